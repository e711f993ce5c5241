// The thin path in the hydrated app: sign in, create a character in the wizard, see it on the
// dashboard, chat with the reply streaming in, reload and find the chat still there.
import { test, expect, accessible, hydrated, signIn, uniqueName } from "../helpers.js";

test("sign in, create a character, chat with streaming, reload keeps the chat", async ({ page }) => {
  await page.goto("/signin");
  await accessible(page, "the sign-in page");
  await signIn(page);
  await hydrated(page);
  await accessible(page, "the empty dashboard");

  await page.getByRole("link", { name: "New character" }).first().click();
  await expect(page).toHaveURL(/\/characters\/new$/);
  await hydrated(page);

  // Validation messages per field, from the shared domain parsers.
  await page.getByRole("button", { name: "Next: write their story" }).click();
  await expect(page.locator('[data-field="name"]')).toHaveText("Name is required.");
  await expect(page.locator('[data-field="traits"]')).toHaveText("Add at least one trait.");
  await expect(page.locator('[data-field="age"]')).toHaveText("Age is required.");
  await accessible(page, "the wizard's first step, with errors");

  const name = uniqueName("Mira");
  await page.getByLabel("Name", { exact: true }).fill(name);
  await expect(page.locator('[data-field="name"]')).toBeEmpty();
  await page.getByLabel("Age", { exact: true }).fill("2000");
  await expect(page.locator('[data-field="age"]')).toHaveText("Age must be between 1 and 1000 years.");
  await page.getByLabel("Age", { exact: true }).fill("29");
  await page.locator("#trait-input").fill("stubborn");
  await page.locator("#trait-input").press("Enter");
  await page.getByRole("button", { name: "curious" }).click();
  await expect(page.getByTestId("traits")).toContainText("stubborn");
  await expect(page.getByTestId("traits")).toContainText("curious");
  await page.getByLabel("Gender").selectOption("female");

  await page.getByRole("button", { name: "Next: write their story" }).click();
  const backstory = page.getByLabel("Backstory");
  await expect(backstory).toHaveValue(new RegExp(name));
  await expect(page.getByTestId("offline-label")).toBeVisible();
  const written = await backstory.inputValue();
  await accessible(page, "the wizard's second step");

  // Back and forth keeps everything.
  await page.getByRole("button", { name: "Back", exact: true }).click();
  await expect(page.getByLabel("Name", { exact: true })).toHaveValue(name);
  await expect(page.getByTestId("traits")).toContainText("stubborn");
  await page.getByRole("button", { name: "Next: write their story" }).click();
  await expect(backstory).toHaveValue(written);

  // Edit, and an emptied field is caught before saving.
  await page.getByLabel("Opening line").fill("");
  await page.getByRole("button", { name: "Save character" }).click();
  await expect(page.locator('[data-field="opening_line"]')).toHaveText("The opening line is required.");
  const greeting = `So you found me, stranger.`;
  await page.getByLabel("Opening line").fill(greeting);
  await page.getByRole("button", { name: "Save character" }).click();

  // The chat opens with the greeting as the character's first message.
  await expect(page).toHaveURL(/\/characters\/[0-9a-f-]{36}\/chat$/);
  await expect(page.getByRole("heading", { name })).toBeVisible();
  const log = page.getByTestId("chat-log");
  await expect(log.getByTestId("message")).toHaveCount(1);
  await expect(log.getByTestId("message").first()).toContainText(greeting);
  await hydrated(page);

  // An empty message is refused in the page; nothing is sent.
  await page.getByLabel("Your message").fill("   ");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("alert")).toHaveText("Your message is required.");
  await expect(log.getByTestId("message")).toHaveCount(1);

  // The reply streams in token by token.
  await page.getByLabel("Your message").fill("What happened to you?");
  await page.getByRole("button", { name: "Send" }).click();
  const reply = log.locator('[data-testid="message"]').nth(2);
  await expect(reply).toHaveAttribute("data-status", "streaming");
  const early = (await reply.locator(".text").textContent()) || "";
  await expect(reply).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
  const final = (await reply.locator(".text").textContent()) || "";
  expect(final.length).toBeGreaterThan(early.length);
  expect(final.split(/\s+/).length).toBeGreaterThan(8);
  await accessible(page, "the chat after a reply");
  await expect(log.getByTestId("message").nth(1)).toContainText("What happened to you?");
  await expect(page.getByLabel("Your message")).toHaveValue("");

  // Reload: the chat is still there.
  await page.reload();
  await expect(log.getByTestId("message")).toHaveCount(3);
  await expect(log.getByTestId("message").nth(1)).toContainText("What happened to you?");
  await expect(log.getByTestId("message").nth(2).locator(".text")).toHaveText(final);

  // The dashboard lists it first (newest first).
  await page.goto("/dashboard");
  await expect(page.getByTestId("character-list").locator("li").first()).toContainText(name);
  await accessible(page, "the dashboard with a character");
});
