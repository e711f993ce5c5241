// Sign-in and the dashboard work with JavaScript disabled: server-rendered pages and plain forms.
import { test, expect, signIn, uniqueName, createCharacter, hydrated } from "../helpers.js";

test("sign in, see the dashboard and sign out without JavaScript", async ({ page }) => {
  await page.goto("/dashboard");
  await expect(page).toHaveURL(/\/signin$/);

  await page.getByRole("button", { name: "Continue as local user" }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByRole("heading", { name: "Your characters" })).toBeVisible();
  await expect(page.getByTestId("user-name")).toHaveText("Local user");
  await expect(page.getByRole("link", { name: "New character" }).first()).toBeVisible();

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/$/);
  await page.goto("/dashboard");
  await expect(page).toHaveURL(/\/signin$/);
});

test("the trash renders without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.goto("/trash");
  await expect(page.getByRole("heading", { name: "Trash" })).toBeVisible();
  await expect(page.getByText("for 30 days")).toBeVisible();
});

test("a card file is imported without JavaScript, and a bad one is refused with a sentence", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.goto("/characters/import");
  await expect(page.getByRole("heading", { name: "Import a character" })).toBeVisible();

  await page.getByLabel("Card file").setInputFiles({ name: "bad.json", mimeType: "application/json", buffer: Buffer.from("[1, 2]") });
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page).toHaveURL(/\/characters\/import\?/);
  await expect(page.getByTestId("import-error")).toContainText("This is not a Character Card");

  const card = { name: "Nojs Vela", description: "A cartographer.", personality: "", scenario: "", first_mes: "Hello." };
  await page.getByLabel("Card file").setInputFiles({ name: "vela.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(card)) });
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page).toHaveURL(/\/characters\/new\?import=/);
  await expect(page.getByTestId("import-notice")).toContainText("Imported from a Character Card V1 file.");
});

test("the twin page renders without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Your twin", exact: true }).click();
  await expect(page).toHaveURL(/\/twin$/);
  await expect(page.getByRole("heading", { name: "Your twin", level: 1 })).toBeVisible();
  await expect(page.getByTestId("twin-profile")).toBeVisible();
  await expect(page.getByText("Editing your twin needs JavaScript.")).toBeVisible();
  await expect(page.getByLabel("What do you do on a free afternoon?")).toBeVisible();
});

test("a story is played without JavaScript: the run page renders and a choice is a form post", async ({ page, browser }) => {
  // The character is made in a context with JavaScript (the wizard); the local user is the same.
  const withJs = await browser.newContext({ javaScriptEnabled: true, baseURL: test.info().project.use.baseURL });
  const helper = await withJs.newPage();
  await signIn(helper);
  const name = uniqueName("Wren");
  const chat = await createCharacter(helper, { name, age: 33, trait: "curious" });
  await withJs.close();
  const character = chat.replace(/\/chat$/, "");

  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.goto(`${character}/play`);
  await page.getByRole("button", { name: "Start a new story" }).click();
  await expect(page).toHaveURL(/\/play\/[0-9a-f-]{36}$/);
  await expect(page.getByTestId("scene-counter")).toHaveText(/^Opening/);
  await expect(page.getByTestId("option")).toHaveCount(3);
  await page.getByLabel("Or do something else").fill("I step inside.");
  await page.getByRole("button", { name: "Do it" }).click();
  await expect(page).toHaveURL(/\/play\/[0-9a-f-]{36}$/);
  await expect(page.getByTestId("scene")).toHaveCount(1);
  await expect(page.getByTestId("scene")).toContainText("I step inside.");
  await expect(page.getByTestId("option")).toHaveCount(3);
  // And an option, as a plain form post.
  await page.getByTestId("option").first().click();
  await expect(page.getByTestId("scene")).toHaveCount(2);
});

test("the API keys page and the API reference render without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.goto("/settings/keys");
  await expect(page.getByRole("heading", { name: "API keys", level: 1 })).toBeVisible();
  await expect(page.getByLabel("Name")).toBeVisible();
  await page.goto("/api/v1/docs");
  await expect(page.getByRole("heading", { name: "PersonaFlux API" })).toBeVisible();
  await expect(page.getByText("GET /api/v1/characters/{id}", { exact: true })).toBeVisible();
});

test("the usage page renders its charts and tables without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  // A model call, so there is something to chart (a plain HTTP call with the page's cookies).
  const generated = await page.request.post("/api/characters/generate", {
    data: {
      draft: {
        name: "Plain Oskar", traits: ["wry"], age: "52", gender: "male", voice: "", scenes: "5",
        language: "English", avatar: "", backstory: "", story_context: "", opening_line: "",
        start_options: [], endings: [],
      },
      variation: 0,
    },
  });
  expect(generated.ok()).toBeTruthy();
  await page.goto("/usage?days=90");
  await expect(page.getByRole("heading", { name: "Your usage", level: 1 })).toBeVisible();
  await expect(page.getByRole("link", { name: "90 days" })).toHaveAttribute("aria-current", "page");
  await expect(page.getByTestId("chart-calls").getByRole("img")).toBeVisible();
  await expect(page.getByTestId("chart-tokens").getByRole("img")).toBeVisible();
  // The details element opens without script; the table has a row for each of the 90 days.
  await page.getByText("Model calls per day, by use: the numbers").click();
  await expect(page.getByTestId("table-calls").locator("tbody tr")).toHaveCount(90);
});

test("the dashboard's search works without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  const word = `zq${Math.random().toString(36).slice(2, 8)}`;
  const name = uniqueName("Omar");
  const saved = await page.request.post("/api/characters/save", {
    data: {
      draft: {
        name, traits: ["steady"], age: "40", gender: "male", voice: "", scenes: "5", language: "English",
        avatar: "tide", backstory: `He keeps the ${word} archive.`, story_context: "A city of stairs.",
        opening_line: "Hello.", start_options: ["Ask.", "Wait.", "Leave."],
        endings: [{ kind: "happy", text: "Home." }, { kind: "tragic", text: "Lost." }, { kind: "ambiguous", text: "Unknown." }],
      },
    },
  });
  expect(saved.ok()).toBeTruthy();
  await page.goto("/dashboard");
  await page.getByRole("searchbox", { name: "Search" }).fill(word);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page).toHaveURL(new RegExp(`q=${word}`));
  await expect(page.getByTestId("character-list").getByRole("listitem")).toHaveCount(1);
  await expect(page.getByTestId("character-list")).toContainText(name);
});

test("tags, favourites, the selection and a picture work without JavaScript", async ({ page }) => {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  const word = `zn${Math.random().toString(36).slice(2, 8)}`;
  const name = uniqueName("Nell");
  const saved = await page.request.post("/api/characters/save", {
    data: {
      draft: {
        name, traits: ["steady"], age: "40", gender: "female", voice: "", scenes: "5", language: "English",
        avatar: "gold", backstory: `She mends the ${word} nets.`, story_context: "A fishing village.",
        opening_line: "Hello.", start_options: ["Ask.", "Wait.", "Leave."],
        endings: [{ kind: "happy", text: "Home." }, { kind: "tragic", text: "Lost." }, { kind: "ambiguous", text: "Unknown." }],
      },
    },
  });
  expect(saved.ok()).toBeTruthy();
  const id = await saved.json();

  // On her page: tags and the star are form posts that come back to the page.
  await page.goto(`/characters/${id}`);
  await page.getByLabel("Tags, separated by commas").fill(`${word}, nets`);
  await page.getByRole("button", { name: "Save tags" }).click();
  await expect(page).toHaveURL(new RegExp(`/characters/${id}\\??$`));
  await expect(page.getByTestId("tags").getByRole("link", { name: word })).toBeVisible();
  await page.getByTestId("favourite").click();
  await expect(page.getByTestId("favourite")).toHaveAttribute("aria-pressed", "true");

  // A picture: the multipart form post comes back with the portrait.
  const png = await page.request.get("/favicon.svg"); // not a picture the server takes
  expect(png.ok()).toBeTruthy();
  await page.getByLabel("Upload a picture").setInputFiles({
    name: "icon.svg", mimeType: "image/svg+xml", buffer: Buffer.from(await png.body()),
  });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await expect(page.getByTestId("posted-error")).toHaveText("Send a PNG, JPEG or WebP picture.");

  // The dashboard: filter by her tag and favourites, tick her, remove a tag from the selection.
  await page.goto(`/dashboard?tag=${word}&fav=1`);
  const list = page.getByTestId("character-list");
  await expect(list.locator(":scope > li")).toHaveCount(1);
  await page.getByRole("checkbox", { name: `Select ${name}` }).check();
  await page.getByLabel("Tags to add or remove").fill("nets");
  await page.getByRole("button", { name: "Remove tags" }).click();
  await expect(page.getByTestId("selection-done")).toHaveText("Removed the tags from 1 character.");
  await expect(page).toHaveURL(new RegExp(`tag=${word}`));
  await expect(list.getByRole("link", { name: "nets" })).toHaveCount(0);
  await expect(list.getByRole("link", { name: word })).toBeVisible();
});

test("chats are listed, renamed, deleted and restored without JavaScript", async ({ page, browser }) => {
  // The chat is made in a context with JavaScript (sending streams the reply); the local user is
  // the same.
  const withJs = await browser.newContext({ javaScriptEnabled: true, baseURL: test.info().project.use.baseURL });
  const helper = await withJs.newPage();
  await signIn(helper);
  const name = uniqueName("Sable");
  await createCharacter(helper, { name, age: 36, trait: "curious" });
  await hydrated(helper);
  await helper.getByLabel("Your message").fill("Hello from a script-less test.");
  await helper.getByRole("button", { name: "Send" }).click();
  await expect(helper).toHaveURL(/\/chats\/[0-9a-f-]{36}$/);
  const list = await helper.getByRole("link", { name: `All chats with ${name}` }).getAttribute("href");
  await withJs.close();

  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await page.goto(list);
  const rows = page.getByTestId("chat-row");
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText(`Chat with ${name}`);
  // Rename: the details open without script; the form is a plain post that comes back here.
  const title = `${name}, unscripted`;
  await rows.first().getByText("Rename").click();
  await rows.first().getByLabel("New title").fill(title);
  await rows.first().getByRole("button", { name: "Save" }).click();
  await expect(rows.first()).toContainText(title);
  // Delete, then restore from the trash.
  await rows.first().getByRole("button", { name: `Delete ${title}` }).click();
  await expect(page.getByText("No chats here yet.")).toBeVisible();
  await page.goto("/trash");
  await page.getByRole("button", { name: `Restore ${title}` }).click();
  await page.goto(list);
  await expect(rows).toHaveCount(1);
  // The chat itself renders, its messages and its links.
  await rows.first().getByRole("link").click();
  await expect(page.getByTestId("chat-title")).toHaveText(title);
  await expect(page.getByTestId("message")).toHaveCount(3);
  await expect(page.getByTestId("new-chat")).toHaveAttribute("href", /\/chat\/new$/);
  // What the model saw for the reply: a link, and a page of plain HTML.
  await page.getByTestId("message").nth(2).getByRole("link", { name: /What the model saw/ }).click();
  await expect(page.getByRole("heading", { name: "What the model saw", level: 1 })).toBeVisible();
  await expect(page.getByTestId("seen-turns").getByRole("listitem")).toHaveCount(2);
  await expect(page.getByTestId("seen-turns")).toContainText("Hello from a script-less test.");
});
