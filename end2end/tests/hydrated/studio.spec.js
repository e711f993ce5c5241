// A character's life after the wizard, in the hydrated app: the wizard's draft survives a reload,
// the dashboard opens the character's page, Edit (with one section written again) saves over it, Duplicate copies it, Delete moves
// it to the trash with an Undo, and the trash restores it.
import { test, expect, accessible, hydrated, signIn, uniqueName, writeAndSave } from "../helpers.js";

test("draft survives a reload; edit, duplicate, delete and undo, restore from the trash", async ({ page }) => {
  await signIn(page);
  await page.goto("/characters/new");
  await hydrated(page);
  const name = uniqueName("Ilse");
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Age", { exact: true }).fill("52");

  // A reload (or a closed tab) loses nothing that was typed.
  await page.reload();
  await hydrated(page);
  await expect(page.getByLabel("Name", { exact: true })).toHaveValue(name);
  await expect(page.getByLabel("Age", { exact: true })).toHaveValue("52");

  await page.getByRole("button", { name: "curious" }).click();
  await writeAndSave(page, new RegExp(name));
  // Saving cleared the kept draft.
  await page.goto("/characters/new");
  await hydrated(page);
  await expect(page.getByLabel("Name", { exact: true })).toHaveValue("");

  // The dashboard opens the character's page.
  await page.goto("/dashboard");
  await hydrated(page);
  await page.getByRole("link", { name }).click();
  await expect(page).toHaveURL(/\/characters\/[0-9a-f-]{36}$/);
  const own = page.url();
  await expect(page.getByRole("heading", { name, level: 1 })).toBeVisible();
  await accessible(page, "a character's page");

  // Edit: the wizard's fields and checks, saved over the character.
  await page.getByRole("link", { name: "Edit" }).click();
  await expect(page).toHaveURL(/\/edit$/);
  await hydrated(page);
  await page.getByLabel("Opening line").fill("");
  await page.getByRole("button", { name: "Save changes" }).click();
  await expect(page.locator('[data-field="opening_line"]')).toHaveText("The opening line is required.");
  await accessible(page, "the edit page, with an error");
  await page.getByLabel("Opening line").fill("The lamp is lit. Come in out of the storm.");
  // Write one section again: it changes, and the edit just made is kept.
  const backstory = page.getByLabel("Backstory");
  const before = await backstory.inputValue();
  await page.getByRole("button", { name: "Write the backstory again" }).click();
  await expect(backstory).not.toHaveValue(before);
  await expect(page.getByLabel("Opening line")).toHaveValue("The lamp is lit. Come in out of the storm.");
  await page.getByRole("button", { name: "Save changes" }).click();
  await expect(page).toHaveURL(own);
  await expect(page.locator("blockquote")).toHaveText("The lamp is lit. Come in out of the storm.");

  // Duplicate: a copy, with its own page.
  await hydrated(page);
  await page.getByRole("button", { name: "Duplicate" }).click();
  await expect(page.getByRole("heading", { name: `${name} (copy)`, level: 1 })).toBeVisible();
  expect(page.url()).not.toBe(own);

  // Delete the copy, then undo.
  await hydrated(page);
  await page.getByRole("button", { name: "Delete" }).click();
  await expect(page).toHaveURL(/\/dashboard\?deleted=/);
  await expect(page.getByTestId("deleted-notice")).toContainText("Moved to the trash");
  await expect(page.getByTestId("character-list")).not.toContainText(`${name} (copy)`);
  await accessible(page, "the dashboard with the undo notice");
  await hydrated(page);
  await page.getByRole("button", { name: "Undo" }).click();
  await expect(page.getByRole("heading", { name: `${name} (copy)`, level: 1 })).toBeVisible();

  // Delete it again, and restore it from the trash.
  await hydrated(page);
  await page.getByRole("button", { name: "Delete" }).click();
  await expect(page).toHaveURL(/\/dashboard\?deleted=/);
  await page.getByRole("link", { name: "Trash" }).click();
  await expect(page).toHaveURL(/\/trash$/);
  await hydrated(page);
  await accessible(page, "the trash");
  await page.getByRole("button", { name: `Restore ${name} (copy)` }).click();
  await expect(page.getByRole("heading", { name: `${name} (copy)`, level: 1 })).toBeVisible();
});
