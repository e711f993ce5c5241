import { test as base, expect } from "@playwright/test";

/**
 * Every spec's `test`: the page fails its test if the browser reports a Content-Security-Policy
 * violation (a blocked script, style, frame or connection) while the test runs.
 */
export const test = base.extend({
  page: async ({ page }, use) => {
    const violations = [];
    page.on("console", (msg) => {
      if (/content security policy/i.test(msg.text())) violations.push(msg.text());
    });
    await use(page);
    expect(violations, "Content-Security-Policy violations reported by the browser").toEqual([]);
  },
});
export { expect };

/** Waits until the page's WASM has hydrated (buttons respond to clicks). */
export async function hydrated(page) {
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 30_000 });
}

export async function signIn(page) {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
}

export function uniqueName(base) {
  return `${base} ${Math.random().toString(36).slice(2, 7)}`;
}
