// Starting headless Chromium for the browser suites (console, dashboard). No imports of its own:
// each suite passes its own playwright-core `chromium`.

/**
 * `chromium.launchPersistentContext`, tried up to three times: now and then Chromium dies as it
 * starts (SIGSEGV before its first page, "Target page, context or browser has been closed"),
 * which says nothing about the page under test.
 */
export async function launchPersistent(chromium, profile, options) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await chromium.launchPersistentContext(profile, options);
    } catch (e) {
      if (attempt >= 3 || !/has been closed/.test(String(e && e.message))) throw e;
      console.error(`chromium died while starting (attempt ${attempt}); starting it again`);
    }
  }
}
