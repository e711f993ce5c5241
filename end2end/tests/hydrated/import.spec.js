// Character Card import in the hydrated app: the import page (accessible, both themes), a V2 card
// file read into the wizard with a notice of what cards lack, those parts written, the character
// saved and its chat opening with the card's greeting; a bad file is refused with a sentence.
import { test, expect, accessible, hydrated, signIn, uniqueName } from "../helpers.js";

function card(name) {
  return {
    spec: "chara_card_v2",
    spec_version: "2.0",
    data: {
      name,
      description: "{{char}} keeps the lighthouse on the northern cape.",
      personality: "quiet, watchful",
      scenario: "A storm is coming in over the cape.",
      first_mes: "You came in this weather, {{user}}?",
      tags: [],
      extensions: { "x-kept": true },
      character_book: { entries: [{ keys: ["lamp"], content: "The lamp is older than the cape.", enabled: true }] },
    },
  };
}

test("import a card, complete it in the wizard, chat with it", async ({ page }) => {
  await signIn(page);
  await hydrated(page);
  await page.getByRole("link", { name: "Import" }).click();
  await expect(page).toHaveURL(/\/characters\/import$/);
  await hydrated(page);
  await accessible(page, "the import page");

  // A file that is not a card: the sentence, in place.
  await page.getByLabel("Card file").setInputFiles({ name: "notes.json", mimeType: "application/json", buffer: Buffer.from("{nope") });
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page.getByTestId("import-error")).toHaveText("The card's data is not valid JSON.");

  const name = uniqueName("Ilse");
  await page.getByLabel("Card file").setInputFiles({
    name: "ilse.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(card(name))),
  });
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page).toHaveURL(/\/characters\/new\?import=/);
  await hydrated(page);
  await expect(page.getByTestId("import-notice")).toContainText("Imported from a Character Card V2 file.");
  await expect(page.getByLabel("Name", { exact: true })).toHaveValue(name);
  await expect(page.getByTestId("traits")).toContainText("watchful");
  await accessible(page, "the wizard with an imported card");

  // The wizard opened again without the import link (a closed tab): the kept draft comes back,
  // still tied to its card (the lorebook shows after saving).
  await page.goto("/characters/new");
  await hydrated(page);
  await expect(page.getByLabel("Name", { exact: true })).toHaveValue(name);

  // Cards have no age, start options or endings: the age typed, the rest written.
  await page.getByLabel("Age", { exact: true }).fill("52");
  await page.getByRole("button", { name: "Next: write their story" }).click();
  await expect(page.getByLabel("Backstory")).toHaveValue(`${name} keeps the lighthouse on the northern cape.`);
  await expect(page.getByLabel("Opening line")).toHaveValue("You came in this weather, you?");
  await expect(page.locator("#start-option-0")).not.toHaveValue("");
  await expect(page.locator("#ending-text-2")).not.toHaveValue("");
  await page.getByRole("button", { name: "Save character" }).click();
  await expect(page).toHaveURL(/\/characters\/[0-9a-f-]{36}\/chat$/);
  await expect(page.getByTestId("chat-log").getByTestId("message").first()).toContainText("You came in this weather, you?");

  // Export: the character's page offers the card as a PNG download, which imports back.
  await page.goto(page.url().replace(/\/chat$/, ""));
  await hydrated(page);
  await expect(page.getByTestId("lorebook")).toContainText("The lamp is older than the cape.");
  await accessible(page, "a character with a lorebook");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export card" }).click()]);
  expect(download.suggestedFilename()).toMatch(/^Ilse-[a-z0-9]+\.png$/);
  const file = await download.path();
  await page.goto("/characters/import");
  await hydrated(page);
  await page.getByLabel("Card file").setInputFiles(file);
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page).toHaveURL(/\/characters\/new\?import=/);
  await expect(page.getByTestId("import-notice")).toContainText("Character Card V3");
  await hydrated(page);
  await expect(page.getByLabel("Age", { exact: true })).toHaveValue("52");

  // Every character at once, from the dashboard.
  await page.goto("/dashboard");
  await hydrated(page);
  const [all] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export all" }).click()]);
  expect(all.suggestedFilename()).toBe("personaflux-characters.zip");
});
