// Tags and favourites, with the keyboard alone: tag a character and mark it a favourite on its
// page, then on the dashboard tick two characters, tag them together, filter by the tag and by
// favourites, delete both and undo. axe-core in both themes on each new state.
import { test, expect, accessible, hydrated, signIn, uniqueName } from "../helpers.js";

function character(name, backstory) {
  return {
    name, traits: ["steady"], age: "33", gender: "female", voice: "", scenes: "5", language: "English",
    avatar: "moss", backstory, story_context: "A town by the sea.", opening_line: "Hello there.",
    start_options: ["Ask.", "Wait.", "Leave."],
    endings: [
      { kind: "happy", text: "Home." },
      { kind: "tragic", text: "Lost." },
      { kind: "ambiguous", text: "Unknown." },
    ],
  };
}

test("tag, favourite, select many and undo with the keyboard alone", async ({ page }) => {
  await signIn(page);
  // Words no other test's characters have (the tests share one local user).
  const word = `zt${Math.random().toString(36).slice(2, 8)}`;
  const tag = `crew${Math.random().toString(36).slice(2, 6)}`;
  const first = uniqueName("Odile");
  const second = uniqueName("Piet");
  const ids = [];
  for (const name of [first, second]) {
    const saved = await page.request.post("/api/characters/save", {
      data: { draft: character(name, `They keep the ${word} archive.`) },
    });
    expect(saved.ok()).toBeTruthy();
    ids.push(await saved.json());
  }

  // On the first one's page: type its tags, Enter; then press Favourite.
  await page.goto(`/characters/${ids[0]}`);
  await hydrated(page);
  const tags = page.getByLabel("Tags, separated by commas");
  await tags.focus();
  await page.keyboard.type(`${word}, Sea`);
  await page.keyboard.press("Enter");
  const shown = page.getByTestId("tags");
  await expect(shown.getByRole("link", { name: word })).toBeVisible();
  await expect(shown.getByRole("link", { name: "Sea" })).toBeVisible();
  const star = page.getByTestId("favourite");
  await expect(star).toHaveAttribute("aria-pressed", "false");
  await star.focus();
  await page.keyboard.press("Enter");
  await expect(star).toHaveAttribute("aria-pressed", "true");
  await accessible(page, "a character's page with tags and a favourite");

  // The dashboard, searched to these two: tick both, type a tag, Add tags.
  await page.goto(`/dashboard?q=${word}`);
  await hydrated(page);
  const list = page.getByTestId("character-list");
  await expect(list.locator(":scope > li")).toHaveCount(2);
  await expect(list.getByRole("img", { name: "Favourite" })).toHaveCount(1);
  for (const name of [first, second]) {
    await page.getByRole("checkbox", { name: `Select ${name}` }).focus();
    await page.keyboard.press("Space");
  }
  await page.getByLabel("Tags to add or remove").focus();
  await page.keyboard.type(tag);
  await page.getByRole("button", { name: "Add tags" }).focus();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(new RegExp(`q=${word}.*done=tagged&n=2`));
  await expect(page.getByTestId("selection-done")).toHaveText("Tagged 2 characters.");
  await accessible(page, "the dashboard after tagging a selection");

  // Follow a tag from a card: both have it.
  await list.getByRole("link", { name: tag }).first().focus();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(new RegExp(`tag=${tag}`));
  await expect(list.locator(":scope > li")).toHaveCount(2);
  // Favourites only: the first one.
  await page.getByLabel("Favourites only").focus();
  await page.keyboard.press("Space");
  await page.getByRole("button", { name: "Search" }).focus();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/fav=1/);
  await expect(list.locator(":scope > li")).toHaveCount(1);
  await expect(list).toContainText(first);

  // Both to the trash, then Undo brings both back.
  await page.goto(`/dashboard?tag=${tag}`);
  await hydrated(page);
  for (const name of [first, second]) {
    await page.getByRole("checkbox", { name: `Select ${name}` }).focus();
    await page.keyboard.press("Space");
  }
  await page.getByRole("button", { name: "Delete" }).focus();
  await page.keyboard.press("Enter");
  const notice = page.getByTestId("deleted-notice");
  await expect(notice).toContainText("Moved 2 characters to the trash.");
  await expect(page.getByTestId("no-match")).toBeVisible();
  await accessible(page, "the dashboard after deleting a selection");
  await notice.getByRole("button", { name: "Undo" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("selection-done")).toHaveText("Brought back 2 characters.");
  await page.goto(`/dashboard?tag=${tag}`);
  await expect(list.locator(":scope > li")).toHaveCount(2);
});
