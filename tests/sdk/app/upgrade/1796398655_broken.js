/// <reference path="../pb_data/types.d.ts" />
// A release that must not go live: it adds a field, then fails; nothing of it may stay.
migrate((app) => {
  const todos = app.findCollectionByNameOrId("todos");
  todos.fields.add(new TextField({ name: "half_done" }));
  app.save(todos);
  throw new Error("this release is broken");
}, (app) => {});
