// With Gemini as the provider (the mock Gemini server on loopback): generation and chat work, and
// faults reach the user as clear messages while nothing they wrote is lost.
import { test, expect, accessible, hydrated, signIn, uniqueName, fillBasics, createCharacter } from "../helpers.js";

test("generation, streaming, a cut-off reply, a failing provider and stop", async ({ page }) => {
  await signIn(page);
  await page.goto("/characters/new");
  await hydrated(page);
  const name = uniqueName("Orrin");
  await fillBasics(page, { name, age: 52, trait: "wise" });
  await page.getByRole("button", { name: "Next: write their story" }).click();
  await expect(page.getByLabel("Backstory")).toHaveValue(new RegExp(`${name} was raised by the mock model`));
  await expect(page.getByTestId("offline-label")).toHaveCount(0);
  await page.getByRole("button", { name: "Save character" }).click();
  await expect(page).toHaveURL(/\/characters\/[0-9a-f-]{36}\/chat$/);
  await hydrated(page);
  const log = page.getByTestId("chat-log");
  const messages = log.getByTestId("message");
  await expect(messages).toHaveCount(1);
  await expect(page.locator(".badge.offline")).toHaveCount(0);

  // A normal reply streams in.
  await page.getByLabel("Your message").fill("Where am I?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(messages.nth(2)).toHaveAttribute("data-status", "complete");
  await expect(messages.nth(2)).toContainText("The mock model heard you say");

  // The stream is cut off mid-event: the partial reply is kept and marked.
  await page.getByLabel("Your message").fill("[[mock:cut_off]] tell me a story");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("alert")).toHaveText("The reply was cut off before it was finished.");
  await expect(messages.nth(4)).toHaveAttribute("data-status", "failed");
  await expect(messages.nth(4)).toContainText("word0 word1");
  await expect(messages.nth(4)).toContainText("cut off");

  // The provider keeps failing: a clear message, and the user's message stays.
  await page.getByLabel("Your message").fill("[[mock:503]] are you there?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("alert")).toContainText("The character model is unavailable right now. Your message is saved");
  await expect(messages.nth(5)).toContainText("are you there?");
  await accessible(page, "the chat with a cut-off reply and a provider error");

  // Stop a long reply: what was written stays, marked stopped.
  await page.getByLabel("Your message").fill("[[mock:long]] go on");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(messages.nth(8)).toContainText("word3");
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(messages.nth(8)).toHaveAttribute("data-status", "stopped");
  const kept = await messages.nth(8).locator(".text").textContent();
  expect(kept).not.toContain("word79");
  await accessible(page, "the chat with a stopped reply");

  // After a reload everything is still there, marked as it was.
  await page.reload();
  await expect(messages).toHaveCount(9);
  await expect(messages.nth(3)).toContainText("[[mock:cut_off]] tell me a story");
  await expect(messages.nth(4)).toHaveAttribute("data-status", "failed");
  await expect(messages.nth(5)).toContainText("are you there?");
  await expect(messages.nth(8)).toHaveAttribute("data-status", "stopped");
  await expect(messages.nth(8).locator(".text")).toHaveText(kept);
});

test("two tabs on one chat: one reply at a time, and the reply can be stopped from the other tab", async ({ page }) => {
  await signIn(page);
  await createCharacter(page, { name: uniqueName("Vela"), age: 30, trait: "wise", backstory: /was raised by the mock model/ });
  await hydrated(page);
  const messages = page.getByTestId("chat-log").getByTestId("message");

  // A slow, long reply (the next one the mock gives).
  const words = Array.from({ length: 300 }, (_, i) => `w${i} `);
  const mock = `http://127.0.0.1:${process.env.PF_E2E_MOCK_PORT || "3102"}`;
  const scripted = await page.request.post(`${mock}/mock/script`, {
    data: [{ kind: "text", chunks: words, chunk_delay_ms: 50 }],
  });
  expect(scripted.ok()).toBeTruthy();
  await page.getByLabel("Your message").fill("Tell me everything.");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(messages.nth(2)).toContainText("w3");

  // The same chat in a second tab: the reply shows as being written, and a second message is
  // refused (and kept in the box) while it is.
  const other = await page.context().newPage();
  await other.goto(page.url());
  await hydrated(other);
  const theirs = other.getByTestId("chat-log").getByTestId("message");
  await expect(theirs.nth(2)).toHaveAttribute("data-status", "streaming");
  await other.getByLabel("Your message").fill("Me too?");
  await other.getByRole("button", { name: "Send" }).click();
  await expect(other.getByRole("alert")).toHaveText(
    "A reply is still being written in this chat. Wait for it or stop it.",
  );
  await expect(other.getByLabel("Your message")).toHaveValue("Me too?");
  await expect(theirs).toHaveCount(3);

  // Stop from the second tab: both tabs show it stopped; then the second message goes through.
  await other.getByRole("button", { name: "Stop" }).click();
  await expect(theirs.nth(2)).toHaveAttribute("data-status", "stopped");
  await expect(messages.nth(2)).toHaveAttribute("data-status", "stopped");
  await other.getByRole("button", { name: "Send" }).click();
  await expect(theirs.nth(4)).toHaveAttribute("data-status", "complete");
  await expect(theirs.nth(3)).toContainText("Me too?");
  await other.close();
});
