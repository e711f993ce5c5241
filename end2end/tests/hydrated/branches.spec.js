// A chat as a tree, in the hydrated app with the offline writer: regenerate a reply and flip
// between its versions, continue the last reply, edit a question and have it answered, delete a
// message and undo — each kept across a reload, with axe in both themes.
import { test, expect, accessible, createCharacter, hydrated, signIn, uniqueName } from "../helpers.js";

test("regenerate, flip versions, continue, edit and delete with undo", async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page);
  const name = uniqueName("Tamsin");
  const chat = await createCharacter(page, { name, age: 31, trait: "curious" });
  await hydrated(page);
  const log = page.getByTestId("chat-log");
  const messages = log.getByTestId("message");
  const last = () => messages.last();
  const settled = async () => {
    await expect(last()).not.toHaveAttribute("data-status", "streaming", { timeout: 30_000 });
    await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();
  };

  await page.getByLabel("Your message").fill("Where were you born?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(messages).toHaveCount(3);
  await settled();
  const first = (await last().locator(".text").textContent()) || "";
  expect(first.length).toBeGreaterThan(0);

  // Regenerate: a new version streams in; ← 2/2 → flips back to the first, kept.
  await last().getByRole("button", { name: "Regenerate" }).click();
  await expect(last()).toHaveAttribute("data-status", "streaming");
  await settled();
  await expect(last().locator(".versions")).toContainText("2/2");
  await expect(messages).toHaveCount(3);
  await accessible(page, "a reply with two versions");
  await last().getByRole("button", { name: "Previous version" }).click();
  await expect(last().locator(".versions")).toContainText("1/2");
  await expect(last().locator(".text")).toHaveText(first);
  await last().getByRole("button", { name: "Next version" }).click();
  await expect(last().locator(".versions")).toContainText("2/2");
  const second = (await last().locator(".text").textContent()) || "";

  // Continue: the last reply is written on, its text so far kept.
  await last().getByRole("button", { name: "Continue" }).click();
  await settled();
  const continued = (await last().locator(".text").textContent()) || "";
  expect(continued.startsWith(second)).toBe(true);
  expect(continued.length).toBeGreaterThan(second.length);
  await expect(messages).toHaveCount(3);

  // Edit the question with the keyboard: a new version, and "Save and get a reply" answers it.
  const question = messages.nth(1);
  await question.getByRole("button", { name: "Edit" }).focus();
  await page.keyboard.press("Enter");
  const editor = question.getByLabel("Edit the message from you");
  await expect(editor).toHaveValue("Where were you born?");
  await editor.fill("Where did you grow up?");
  await accessible(page, "a message being edited");
  await question.getByRole("button", { name: "Save and get a reply" }).click();
  await expect(messages).toHaveCount(3);
  await settled();
  await expect(messages.nth(1).locator(".text")).toHaveText("Where did you grow up?");
  await expect(messages.nth(1).locator(".versions")).toContainText("2/2");
  // The old question still has its own answers.
  await messages.nth(1).getByRole("button", { name: "Previous version" }).click();
  await expect(messages.nth(1).locator(".text")).toHaveText("Where were you born?");
  await expect(last().locator(".text")).toHaveText(continued);

  // Delete the last reply: its other version takes its place; Undo brings it back.
  await last().getByRole("button", { name: "Delete" }).click();
  await expect(page.getByRole("status")).toContainText("Message deleted.");
  await expect(last().locator(".text")).toHaveText(first);
  await expect(last().locator(".versions")).toHaveCount(0);
  await accessible(page, "a deleted message with its undo");
  await page.getByRole("button", { name: "Undo" }).click();
  await expect(last().locator(".text")).toHaveText(continued);
  await expect(last().locator(".versions")).toContainText("2/2");

  // All of it is saved: the reload shows the branch last chosen.
  await page.goto(chat);
  await expect(messages).toHaveCount(3);
  await expect(messages.nth(1).locator(".text")).toHaveText("Where were you born?");
  await expect(messages.nth(1).locator(".versions")).toContainText("1/2");
  await expect(last().locator(".text")).toHaveText(continued);
});

test("the composer's keys: Enter sends, Shift+Enter breaks a line, Escape stops, Up edits", async ({ page }) => {
  test.setTimeout(90_000);
  await signIn(page);
  await createCharacter(page, { name: uniqueName("Odile"), age: 40, trait: "curious" });
  await hydrated(page);
  const messages = page.getByTestId("chat-log").getByTestId("message");
  const composer = page.getByLabel("Your message");

  // Shift+Enter is a new line; Enter sends both lines as one message.
  await composer.focus();
  await page.keyboard.type("First line");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("second line");
  await expect(composer).toHaveValue("First line\nsecond line");
  await page.keyboard.press("Enter");
  await expect(messages).toHaveCount(3);
  await expect(messages.nth(1).locator(".text")).toHaveText("First line\nsecond line");
  await expect(composer).toHaveValue("");

  // Escape stops the reply being written; its text so far is kept, marked stopped.
  await expect(messages.nth(2)).toHaveAttribute("data-status", "streaming");
  await expect(composer).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(messages.nth(2)).toHaveAttribute("data-status", "stopped", { timeout: 10_000 });

  // Up in the empty composer edits one's last message, focused; Escape closes it and focus
  // comes back to the composer.
  await page.keyboard.press("ArrowUp");
  const editor = page.getByLabel("Edit the message from you");
  await expect(editor).toBeFocused();
  await expect(editor).toHaveValue("First line\nsecond line");
  await page.keyboard.press("Escape");
  await expect(editor).toHaveCount(0);
  await expect(composer).toBeFocused();
  // And again: the editor opened a second time has the focus too.
  await page.keyboard.press("ArrowUp");
  await expect(editor).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(composer).toBeFocused();
  await accessible(page, "the chat after a stopped reply");
});
