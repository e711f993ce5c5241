// The theme chooser at the foot of every page: a choice made with the keyboard alone is kept
// across pages and rendered by the server (no flash), passes axe-core, and "Auto" follows the
// system again.
import { test, expect, accessible, hydrated, signIn } from "../helpers.js";

test("choose the dark theme with the keyboard; it is kept, accessible, and can be undone", async ({ page }) => {
  await signIn(page);
  await hydrated(page);
  const html = page.locator("html");
  await expect(html).toHaveAttribute("data-theme", "system");

  // Keyboard only: focus the Dark button and press Enter.
  const dark = page.getByRole("button", { name: "Dark", exact: true });
  await dark.focus();
  await page.keyboard.press("Enter");
  await expect(html).toHaveAttribute("data-theme", "dark");
  await expect(page).toHaveURL(/\/dashboard/);
  await expect(page.getByRole("button", { name: "Dark", exact: true })).toHaveAttribute("aria-pressed", "true");
  expect(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe("rgb(20, 18, 27)");

  // Kept on the next page, from the server's first byte.
  await page.goto("/characters/new");
  await expect(html).toHaveAttribute("data-theme", "dark");
  await hydrated(page);
  await accessible(page, "the wizard in the dark theme");
  await page.goto("/signin");
  await accessible(page, "the sign-in page in the dark theme");

  // Light, pinned, whatever the system says.
  await page.emulateMedia({ colorScheme: "dark" });
  await page.getByRole("button", { name: "Light", exact: true }).click();
  await expect(html).toHaveAttribute("data-theme", "light");
  expect(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe("rgb(247, 246, 251)");

  // Auto follows the system again.
  await page.getByRole("button", { name: "Auto", exact: true }).click();
  await expect(html).toHaveAttribute("data-theme", "system");
  expect(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe("rgb(20, 18, 27)");
});
