import { expect } from "@playwright/test";

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
