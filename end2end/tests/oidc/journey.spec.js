// Two people, each with a twin made from the questionnaire, find each other in matches: a score
// and reasoning for both; one edits a public Shade and the other sees the match updating, then a
// new score; they start an icebreaker; and without JavaScript the twin and the dashboard render.
// Both sign in through the real OpenID Connect provider, each in a browser context of their own.
import { test, expect, hydrated, accessible, signInWithIdp } from "../helpers.js";

/** Makes `page`'s twin from one answer: two suggestions accepted, both public, open to matches. */
async function makeTwin(page, name) {
  await page.goto("/twin");
  await hydrated(page);
  await page.getByLabel("What do you do on a free afternoon?").fill("I read novels late at night.");
  await page.getByRole("button", { name: "Suggest Shades" }).click();
  for (const shade of ["Reader", "Night owl"]) {
    await page.getByRole("button", { name: `Accept ${shade}` }).click();
  }
  await page.getByLabel("Display name").fill(name);
  await page.getByLabel("Let other people be matched with my twin").check();
  const publics = page.getByLabel("Public: may be used in other people's matches");
  await expect(publics).toHaveCount(2);
  await publics.nth(0).check();
  await publics.nth(1).check();
  await page.getByRole("button", { name: "Create your twin" }).click();
  await expect(page.getByTestId("twin-status")).toHaveText("Your twin is saved.");
  await expect(page.getByText("Open to matches: other people see your public Shades.")).toBeVisible();
}

test("two twins meet: matched both ways, updated after an edit, and an icebreaker", async ({ browser }) => {
  const carolContext = await browser.newContext();
  const carol = await carolContext.newPage();
  await signInWithIdp(carol, "carol");
  await makeTwin(carol, "Carol's twin");

  const daveContext = await browser.newContext();
  const dave = await daveContext.newPage();
  await signInWithIdp(dave, "dave");
  await makeTwin(dave, "Dave's twin");

  // Carol finds Dave among other people's twins and works out the match.
  await carol.goto("/matches");
  await hydrated(carol);
  await carol.getByRole("button", { name: "Work out the match with Dave's twin" }).click();
  await expect(carol).toHaveURL(/\/matches\/[0-9a-f-]{36}$/);
  const matchUrl = new URL(carol.url()).pathname;
  await expect(carol.getByTestId("score")).toContainText("/ 100");
  await expect(carol.getByTestId("reasoning")).toContainText("share");

  // Dave sees the same match, with its score and reasoning.
  await dave.goto("/matches");
  const card = dave.getByTestId("match").filter({ hasText: "Carol's twin" });
  await expect(card).toHaveAttribute("data-state", "fresh");
  await expect(card.getByTestId("score")).toContainText("/ 100");
  await card.getByRole("link", { name: "Carol's twin" }).click();
  await expect(dave.getByTestId("reasoning")).toContainText("share");
  await accessible(dave, "the other owner's view of a match");

  // Carol edits a public Shade: Dave's list shows the match updating, then a new score.
  await carol.goto("/twin");
  await hydrated(carol);
  await carol.getByLabel("Description").first().fill("Books are where I go to think, and jazz plays while I read.");
  await carol.getByRole("button", { name: "Save your twin" }).click();
  await expect(carol.getByTestId("twin-status")).toHaveText("Your twin is saved.");
  await dave.goto("/matches");
  const again = dave.getByTestId("match").filter({ hasText: "Carol's twin" });
  await expect(again).toHaveAttribute("data-state", "updating");
  await expect(again.getByTestId("score")).toHaveText("updating…");
  await hydrated(dave);
  await expect(again).toHaveAttribute("data-state", "fresh", { timeout: 20_000 });
  await expect(again.getByTestId("score")).toContainText("/ 100");

  // Dave starts an icebreaker; Carol reads it.
  await dave.goto(matchUrl);
  await hydrated(dave);
  await dave.getByRole("button", { name: "Start a conversation" }).click();
  await expect(dave.getByTestId("icebreaker").getByRole("listitem")).toHaveCount(4, { timeout: 20_000 });
  await expect(dave.getByRole("button", { name: "Start again" })).toBeEnabled({ timeout: 20_000 });
  await carol.goto(matchUrl);
  await expect(carol.getByTestId("icebreaker").getByRole("listitem")).toHaveCount(4);
  await carolContext.close();
  await daveContext.close();

  // Without JavaScript, the twin and the dashboard render.
  const plainContext = await browser.newContext({ javaScriptEnabled: false });
  const plain = await plainContext.newPage();
  await signInWithIdp(plain, "carol", { js: false });
  await expect(plain.getByTestId("dashboard-twin")).toContainText("Carol's twin");
  await expect(plain.getByTestId("dashboard-twin")).toContainText("Dave's twin");
  await plain.goto("/twin");
  await expect(plain.getByTestId("twin-profile").getByRole("heading", { name: "Carol's twin" })).toBeVisible();
  await expect(plain.getByTestId("twin-profile")).toContainText("Night owl");
  await plainContext.close();
});
