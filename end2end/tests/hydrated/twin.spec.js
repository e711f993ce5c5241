// The twin page, with the keyboard alone: Shades suggested from the questionnaire (offline
// writer, labelled), two accepted, one reordered, the twin named and saved; a Shade left blank is
// refused beside its fields; the answers survive a reload; a chat with the twin streams and is
// kept; axe-core in both themes.
import { test, expect, hydrated, signIn, accessible, createCharacter, uniqueName } from "../helpers.js";

/** Moves the focus with Tab (at most `limit` presses) until `locator` has it. */
async function tabTo(page, locator, limit = 120) {
  for (let i = 0; i < limit; i++) {
    if (await locator.evaluate((el) => el === document.activeElement)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${locator}`);
}

test("a twin is made from the questionnaire with the keyboard alone", async ({ page }) => {
  await signIn(page);
  await page.goto("/twin");
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Your twin", level: 1 })).toBeVisible();
  await expect(page.getByRole("heading", { name: "No twin yet" })).toBeVisible();
  await accessible(page, "the twin page, empty");

  // Suggest with nothing written: a sentence, no suggestions.
  const suggest = page.getByRole("button", { name: "Suggest Shades" });
  await tabTo(page, suggest);
  await page.keyboard.press("Enter");
  await expect(page.getByText("Answer at least one question, or paste a bio.")).toBeVisible();

  const first = page.getByLabel("What do you do on a free afternoon?");
  await tabTo(page, first);
  await page.keyboard.type("I hike and explore new trails, then read novels late at night.");
  await tabTo(page, suggest);
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { name: /Suggested Shades/ })).toBeVisible();
  await expect(page.getByText("Offline writer")).toBeVisible();
  await expect(page.getByTestId("twin-status")).toContainText("Shades suggested below");
  await accessible(page, "the twin page with suggestions");

  for (const name of ["Explorer", "Reader"]) {
    await tabTo(page, page.getByRole("button", { name: `Accept ${name}` }));
    await page.keyboard.press("Enter");
    await expect(page.getByTestId("twin-status")).toContainText(`"${name}" added`);
  }
  await expect(page.getByRole("button", { name: "Accept Explorer" })).toHaveCount(0);
  await expect(page.getByRole("group", { name: /Explorer/ })).toBeVisible();
  await expect(page.getByRole("group", { name: /Reader/ })).toBeVisible();

  // Reader first.
  await tabTo(page, page.getByRole("button", { name: "Move Reader up" }));
  await page.keyboard.press("Enter");
  await expect(page.locator(".shade-edit legend").first()).toContainText("Reader");

  const name = page.getByLabel("Display name");
  await tabTo(page, name);
  await page.keyboard.press("Control+A");
  await page.keyboard.type("Ada's twin");

  await tabTo(page, page.getByRole("button", { name: "Create your twin" }));
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("twin-status")).toHaveText("Your twin is saved.");
  const profile = page.getByTestId("twin-profile");
  await expect(profile.getByRole("heading", { name: "Ada's twin" })).toBeVisible();
  await expect(profile.locator(".shade-card strong")).toHaveText(["Reader", "Explorer"]);
  await expect(profile.getByRole("meter").first()).toBeVisible();
  await accessible(page, "the twin page, saved");

  // A blank Shade: refused beside its fields, nothing sent.
  await tabTo(page, page.getByRole("button", { name: "Add a Shade" }));
  await page.keyboard.press("Enter");
  await tabTo(page, page.getByRole("button", { name: "Save your twin" }));
  await page.keyboard.press("Enter");
  const blankName = page.locator('[id="shades.2.name"]');
  await expect(blankName).toHaveAttribute("aria-invalid", "true");
  await expect(page.locator('[id="shades.2.name-error"]')).toHaveText("Each Shade's name is required.");
  await accessible(page, "the twin page with a field error");
  await tabTo(page, page.getByRole("button", { name: "Delete Shade 3" }));
  await page.keyboard.press("Enter");
  await expect(page.locator(".shade-edit")).toHaveCount(2);

  // After a reload: the saved twin, and the answers as typed.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("twin-profile").getByRole("heading", { name: "Ada's twin" })).toBeVisible();
  await expect(page.getByLabel("What do you do on a free afternoon?")).toHaveValue(/hike and explore/);
  await expect(page.getByRole("button", { name: "Save your twin" })).toBeVisible();

  // Chat with the twin: the same chat page and engine, the reply streamed and kept.
  await tabTo(page, page.getByRole("link", { name: "Chat with your twin" }));
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/twin\/chat$/);
  await expect(page.getByRole("heading", { name: "Ada's twin", level: 1 })).toBeVisible();
  await hydrated(page);
  const log = page.getByTestId("chat-log");
  await expect(log.getByTestId("message")).toHaveCount(1);
  const message = page.getByLabel("Your message");
  await tabTo(page, message);
  await page.keyboard.type("What do we do on Sundays?");
  await tabTo(page, page.getByRole("button", { name: "Send" }));
  await page.keyboard.press("Enter");
  const reply = log.getByTestId("message").nth(2);
  await expect(reply).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
  await accessible(page, "the chat with one's twin");
  await page.reload();
  await expect(page.getByTestId("chat-log").getByTestId("message")).toHaveCount(3);
});

// Runs after the test above (same file, in order): the twin exists.
test("the twin is matched with a character: score, reasoning, strengths and challenges", async ({ page }) => {
  await signIn(page);
  const name = uniqueName("Vela");
  await createCharacter(page, { name, age: 40, trait: "curious" });

  await page.getByRole("link", { name: "Matches" }).click();
  await expect(page).toHaveURL(/\/matches$/);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Matches", level: 1 })).toBeVisible();
  await expect(page.getByText("No matches yet")).toBeVisible();
  await expect(page.getByText("Open your twin to matches")).toBeVisible();
  await accessible(page, "the matches page, empty");

  await page.getByRole("button", { name: `Work out the match with ${name}` }).click();
  await expect(page).toHaveURL(/\/matches\/[0-9a-f-]{36}$/);
  await expect(page.getByRole("heading", { name: `Ada's twin and ${name}`, level: 1 })).toBeVisible();
  await expect(page.getByTestId("score")).toContainText("/ 100");
  await expect(page.getByText("Offline writer")).toBeVisible();
  await expect(page.getByRole("heading", { name: "Strengths" })).toBeVisible();
  await expect(page.locator("section").filter({ hasText: "Challenges" }).getByRole("listitem")).toHaveCount(3);
  await accessible(page, "a match");

  // An icebreaker: the two speak in turn, streamed, then saved.
  await hydrated(page);
  await page.getByRole("button", { name: "Start a conversation" }).click();
  const talk = page.getByTestId("icebreaker").getByRole("listitem");
  await expect(talk).toHaveCount(4, { timeout: 20_000 });
  await expect(page.getByRole("button", { name: "Start again" })).toBeEnabled({ timeout: 20_000 });
  await expect(talk.first()).toContainText("Ada's twin:");
  await expect(talk.nth(1)).toContainText(`${name}:`);
  await accessible(page, "a match with its conversation");
  await page.reload();
  await expect(page.getByTestId("icebreaker").getByRole("listitem")).toHaveCount(4);

  await page.getByRole("link", { name: "All matches" }).click();
  const card = page.getByTestId("match").filter({ hasText: name });
  await expect(card).toHaveAttribute("data-state", "fresh");
  await expect(card.getByTestId("score")).toContainText("/ 100");
  await page.getByRole("link", { name: "Twins only" }).click();
  await expect(page).toHaveURL(/kind=twin/);
  await expect(page.getByTestId("match")).toHaveCount(0);
  await page.getByRole("link", { name: "Characters only" }).click();
  await expect(page.getByTestId("match")).toHaveCount(1);
  await accessible(page, "the matches page with a match");
});
