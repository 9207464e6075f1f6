/// <reference path="../pb_data/types.d.ts" />
// The app's second release: todos get a priority; the ones already done get 1.
migrate((app) => {
  const todos = app.findCollectionByNameOrId("todos");
  todos.fields.add(new NumberField({ name: "priority", min: 0, max: 5, onlyInt: true }));
  app.save(todos);

  const done = app.findRecordsByFilter("todos", "done = true", "", 0, 0);
  for (const todo of done) {
    todo.set("priority", 1);
    app.save(todo);
  }
}, (app) => {
  const todos = app.findCollectionByNameOrId("todos");
  todos.fields.removeByName("priority");
  app.save(todos);
});
