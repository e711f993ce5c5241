// Several chats with one character, in the hydrated app with the offline writer: a character's
// chat is shown before it is made and made by the first message; a second chat is started from
// the chat page; the list shows both, renames one; a branch starts a third from a message; a
// chat is deleted, undone, deleted again and restored from the trash; a chat goes out as a
// SillyTavern JSONL file and comes back in as a new chat; what the model saw for a reply opens
// from it — with axe in both themes.
import { test, expect, accessible, createCharacter, hydrated, signIn, uniqueName } from "../helpers.js";

test("two chats with one character: listed, renamed, branched, trashed and restored", async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  const name = uniqueName("Oriel");
  const talk = `${name}: the lighthouse`;
  await createCharacter(page, { name, age: 40, trait: "curious" });
  await hydrated(page);
  const messages = page.getByTestId("chat-log").getByTestId("message");
  const settled = async () => {
    await expect(messages.last()).not.toHaveAttribute("data-status", "streaming", { timeout: 30_000 });
    await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();
  };
  const send = async (text) => {
    await page.getByLabel("Your message").fill(text);
    await page.getByLabel("Your message").press("Enter");
    await expect(messages.filter({ hasText: text })).toHaveCount(1);
    await settled();
  };

  // Not made until the first message; then the address is the chat's own.
  await expect(page.getByTestId("chat-title")).toHaveText("New chat");
  await expect(messages).toHaveCount(1);
  await send("Tell me about the *lighthouse*.");
  await expect(page).toHaveURL(/\/chats\/[0-9a-f-]{36}$/);
  await expect(page.getByTestId("chat-title")).toHaveText(`Chat with ${name}`);
  const first = page.url();
  await page.reload();
  await expect(page.getByTestId("chat-title")).toHaveText(`Chat with ${name}`);
  await expect(messages).toHaveCount(3);
  // Markdown, formatted on the server: the asterisks are emphasis.
  await expect(messages.nth(1).locator("em")).toHaveText("lighthouse");
  // What the model saw for the reply, reached with the keyboard: the prompt part by part.
  await hydrated(page);
  await messages.nth(2).getByRole("link", { name: /What the model saw/ }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { name: "What the model saw", level: 1 })).toBeVisible();
  await expect(page.getByTestId("seen-turns").getByRole("listitem")).toHaveCount(2);
  await expect(page.getByTestId("seen-system")).toContainText(name);
  await accessible(page, "what the model saw");
  await page.goto(first);

  // A second chat, from the chat page: only the greeting, then its own conversation.
  await hydrated(page);
  await page.getByTestId("new-chat").click();
  await expect(page).toHaveURL(/\/chat\/new$/);
  await hydrated(page);
  await expect(messages).toHaveCount(1);
  const token = name.split(" ")[1];
  await send(`What about the storm, ${token}?`);
  await expect(page).toHaveURL(/\/chats\/[0-9a-f-]{36}$/);
  expect(page.url()).not.toBe(first);
  const second = page.url();
  await accessible(page, "a second chat with a character");

  // Searched from the chats page with the keyboard: the message found opens its chat, marked.
  await page.goto("/chats");
  await hydrated(page);
  await page.getByLabel("Search your chats").fill(`STORM ${token}`);
  await page.getByLabel("Search your chats").press("Enter");
  await expect(page).toHaveURL(/\/chats\?q=/);
  // The reply may quote the question; the question itself is found once.
  const mine = page.getByTestId("hit").filter({ hasText: " · You · " });
  await expect(mine).toHaveCount(1);
  await expect(mine).toContainText(`What about the storm, ${token}?`);
  await accessible(page, "search results");
  await mine.getByRole("link").click();
  await expect(page).toHaveURL(/\?at=/);
  await expect(page.locator(".msg.found")).toContainText(`What about the storm, ${token}?`);
  await page.goto(second);
  await hydrated(page);

  // Both listed, the latest first; the first renamed.
  const list = await page.getByRole("link", { name: `All chats with ${name}` }).getAttribute("href");
  expect(list).toMatch(/^\/chats\?with=[0-9a-f-]{36}$/);
  await page.getByRole("link", { name: `All chats with ${name}` }).click();
  await expect(page.getByRole("heading", { name: "Your chats", level: 1 })).toBeVisible();
  await hydrated(page);
  const rows = page.getByTestId("chat-row");
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText(`What about the storm, ${token}?`);
  await expect(rows.nth(1)).toContainText(`Chat with ${name}`);
  await accessible(page, "the list of chats");
  await rows.nth(1).getByText("Rename").click();
  await rows.nth(1).getByLabel("New title").fill(talk);
  await rows.nth(1).getByRole("button", { name: "Save" }).click();
  await expect(rows.filter({ hasText: talk })).toHaveCount(1);

  // The renamed chat holds its own conversation; a branch from its question is a new chat.
  await rows.filter({ hasText: talk }).getByRole("link").click();
  await hydrated(page);
  await expect(page.getByTestId("chat-title")).toHaveText(talk);
  await expect(messages.filter({ hasText: "What about the storm" })).toHaveCount(0);
  await messages.nth(1).getByRole("button", { name: "Branch a new chat from your message" }).click();
  await expect(page.getByTestId("chat-title")).toHaveText(`Branch of ${talk}`);
  await expect(messages).toHaveCount(2);
  await expect(messages.last()).toContainText("Tell me about the lighthouse.");

  // Deleted from the list, with an Undo; deleted again, restored from the trash.
  await page.goto(list);
  await hydrated(page);
  await expect(rows).toHaveCount(3);
  const branch = rows.filter({ hasText: `Branch of ${talk}` });
  await branch.getByRole("button", { name: `Delete Branch of ${talk}` }).click();
  await expect(page.getByTestId("chat-deleted")).toContainText("Chat moved to the trash.");
  await expect(rows).toHaveCount(2);
  await accessible(page, "a chat deleted, with its undo");
  await page.getByTestId("chat-deleted").getByRole("button", { name: "Undo" }).click();
  await expect(rows).toHaveCount(3);
  await expect(page.getByTestId("chat-deleted")).toHaveCount(0);
  await branch.getByRole("button", { name: `Delete Branch of ${talk}` }).click();
  await expect(rows).toHaveCount(2);
  await page.goto("/trash");
  await hydrated(page);
  const trashed = page.getByTestId("trashed-chats");
  await expect(trashed).toContainText(`Branch of ${talk}`);
  await accessible(page, "the trash with a chat");
  await trashed.getByRole("button", { name: `Restore Branch of ${talk}` }).click();
  await expect(page.getByText(`Branch of ${talk}`)).toHaveCount(0);
  await page.goto(list);
  await expect(rows).toHaveCount(3);

  // Out as a SillyTavern chat file, and back in as a new chat with the same conversation.
  const escaped = talk.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  await page.getByRole("link", { name: new RegExp(`^${escaped}`) }).click();
  await hydrated(page);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "JSONL" }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/\.jsonl$/);
  const file = await download.path();
  await page.goto(list);
  await page.getByText("Import a SillyTavern chat").click();
  await page.getByLabel("Chat file (.jsonl)").setInputFiles(file);
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page).toHaveURL(/\/chats\/[0-9a-f-]{36}$/);
  await expect(page.getByTestId("chat-title")).toContainText("Imported chat of");
  await expect(messages).toHaveCount(3);
  await expect(messages.nth(1)).toContainText("Tell me about the lighthouse.");
  await accessible(page, "an imported chat");
  await page.goto(list);
  await expect(rows).toHaveCount(4);
});

test("a long chat loads earlier messages on scroll, and its running summary is written, shown and corrected with the keyboard", async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  const name = uniqueName("Vesna");
  await createCharacter(page, { name, age: 51, trait: "curious" });
  await hydrated(page);
  const list = await page.getByRole("link", { name: `All chats with ${name}` }).getAttribute("href");
  // A SillyTavern chat far longer than what the model is sent.
  const lines = [JSON.stringify({ user_name: "You", character_name: name })];
  for (let i = 0; i < 400; i++) {
    lines.push(JSON.stringify({
      name: i % 2 === 0 ? "You" : name,
      is_user: i % 2 === 0,
      mes: `Message number ${i} of a long evening. We spoke of the harbour, the lamp and the weather.`,
    }));
  }
  await page.goto(list);
  await page.getByText("Import a SillyTavern chat").click();
  await page.getByLabel("Chat file (.jsonl)").setInputFiles({
    name: "long.jsonl",
    mimeType: "application/jsonl",
    buffer: Buffer.from(lines.join("\n") + "\n"),
  });
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page).toHaveURL(/\/chats\/[0-9a-f-]{36}$/);
  const chat = page.url();
  await hydrated(page);
  await expect(page.getByTestId("summary")).toHaveCount(0);

  // It opens at its latest 50 messages, scrolled down to them; scrolled to the top, the 50
  // before load in place, the view staying on the message it was on.
  const messages = page.getByTestId("chat-log").getByTestId("message");
  await expect(messages).toHaveCount(50);
  await expect(messages.last()).toContainText("Message number 399");
  await expect.poll(() => page.evaluate(() => window.scrollY)).toBeGreaterThan(500);
  const top = messages.first();
  await expect(top).toContainText("Message number 350 ");
  await page.evaluate(() => window.scrollTo(0, 0));
  await expect(messages).toHaveCount(100);
  await expect(messages.first()).toContainText("Message number 300 ");
  expect(page.url()).toBe(chat);
  await expect.poll(() => page.evaluate(() => window.scrollY)).toBeGreaterThan(500);
  await expect(page.getByText("Message number 350 ", { exact: false })).toBeInViewport();

  // A message: its reply is written from the newest messages, and the summary of the rest after.
  await page.getByLabel("Your message").fill("What did we speak of first?");
  await page.getByLabel("Your message").press("Enter");
  await expect(messages.last()).not.toHaveAttribute("data-status", "streaming", { timeout: 30_000 });
  await expect(async () => {
    await page.goto(chat);
    await expect(page.getByTestId("summary")).toHaveCount(1, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await hydrated(page);

  // Opened and corrected with the keyboard alone; a plain form, saved and shown.
  const summary = page.getByTestId("summary");
  await summary.locator("summary").focus();
  await page.keyboard.press("Enter");
  const text = summary.getByLabel("The summary");
  await expect(text).toBeVisible();
  await expect(text).toHaveValue(/Message number \d+ of a long evening/);
  await accessible(page, "a chat with its summary open");
  await text.focus();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type(`They spoke of the harbour first, ${name}.`);
  await page.keyboard.press("Tab");
  await expect(summary.getByRole("button", { name: "Save the summary" })).toBeFocused();
  await page.keyboard.press("Enter");
  // Back on the chat (the server function's redirect, with an empty query).
  await expect(page).toHaveURL((url) => url.pathname === new URL(chat).pathname && !url.search.includes("__err"));
  // Closed again after the reload; its text is the correction.
  await expect(page.getByTestId("summary").locator("textarea"))
    .toHaveValue(`They spoke of the harbour first, ${name}.`);
});
