// The dashboard's search, with the keyboard alone: a word from a backstory finds its character
// (and only the characters that have it), the order changes, the search is kept in the address
// and the form, and clearing it shows every character again. axe-core in both themes.
import { test, expect, accessible, hydrated, signIn, uniqueName } from "../helpers.js";

function character(name, backstory, traits) {
  return {
    name, traits, age: "33", gender: "female", voice: "", scenes: "5", language: "English",
    avatar: "tide", backstory, story_context: "A town by the sea.", opening_line: "Hello there.",
    start_options: ["Ask.", "Wait.", "Leave."],
    endings: [
      { kind: "happy", text: "Home." },
      { kind: "tragic", text: "Lost." },
      { kind: "ambiguous", text: "Unknown." },
    ],
  };
}

test("search the dashboard with the keyboard alone", async ({ page }) => {
  await signIn(page);
  // A word no other character has (the tests share one local user).
  const word = `zq${Math.random().toString(36).slice(2, 8)}`;
  const first = uniqueName("Ines");
  const second = uniqueName("Aiko");
  for (const [name, story] of [[first, `She guards the ${word} lighthouse.`], [second, `She sails past the ${word} reef.`]]) {
    const saved = await page.request.post("/api/characters/save", { data: { draft: character(name, story, ["steady"]) } });
    expect(saved.ok()).toBeTruthy();
  }
  await page.goto("/dashboard");
  await hydrated(page);

  // Keyboard only: from the skip link to the search field, type, Enter.
  await page.keyboard.press("Tab");
  await expect(page.getByRole("link", { name: "Skip to content" })).toBeFocused();
  await page.keyboard.press("Enter");
  const search = page.getByRole("searchbox", { name: "Search" });
  for (let i = 0; i < 30 && !(await search.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  await expect(search).toBeFocused();
  await page.keyboard.type(word);
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(new RegExp(`[?&]q=${word}`));
  const list = page.getByTestId("character-list");
  await expect(list.getByRole("listitem")).toHaveCount(2);
  await expect(list).toContainText(first);
  await expect(list).toContainText(second);
  await expect(page.getByRole("searchbox", { name: "Search" })).toHaveValue(word);
  await accessible(page, "the dashboard with a search");

  // Two words: only the character with both.
  await page.getByRole("searchbox", { name: "Search" }).fill(`${word} reef`);
  await page.getByRole("searchbox", { name: "Search" }).press("Enter");
  await expect(list.getByRole("listitem")).toHaveCount(1);
  await expect(list).toContainText(second);

  // Order by name, chosen with the keyboard.
  await page.getByRole("searchbox", { name: "Search" }).fill(word);
  await page.getByLabel("Order").focus();
  await page.getByLabel("Order").selectOption("name");
  await page.getByRole("button", { name: "Search" }).press("Enter");
  await expect(page).toHaveURL(/sort=name/);
  const names = await list.locator(".name").allTextContents();
  expect(names).toEqual([first, second].sort());

  // Nothing found: a sentence and a way back.
  await page.getByRole("searchbox", { name: "Search" }).fill(`${word}nothing`);
  await page.getByRole("searchbox", { name: "Search" }).press("Enter");
  await expect(page.getByTestId("no-match")).toBeVisible();
  await accessible(page, "the dashboard with nothing found");
  await page.getByRole("link", { name: "Show them all" }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByRole("searchbox", { name: "Search" })).toHaveValue("");
});
