// Play mode in the hydrated app, with the offline writer: a 5-scene story played to an ending,
// choosing options and once typing an action, with a reload in the middle that resumes where the
// story stopped; the scenes stream in; the ending screen; the run listed on the character's play
// page and the dashboard. axe-core on each state, in both themes.
import { test, expect, accessible, hydrated, signIn, uniqueName, fillBasics, writeAndSave } from "../helpers.js";

test("play a 5-scene story to an ending, resume after a reload, read it back", async ({ page }) => {
  await signIn(page);
  await page.goto("/characters/new");
  await hydrated(page);
  const name = uniqueName("Tamsin");
  await fillBasics(page, { name, age: 40, trait: "brave" });
  await page.getByLabel("Number of scenes").selectOption("5");
  const chat = await writeAndSave(page, new RegExp(name));
  const character = chat.replace(/\/chat$/, "");

  await page.goto(character);
  await hydrated(page);
  await page.getByTestId("play").click();
  await expect(page).toHaveURL(/\/play$/);
  await expect(page.getByText("No stories yet")).toBeVisible();
  await accessible(page, "a character's play page, no runs");
  await hydrated(page);
  await page.getByTestId("start-run").click();
  await expect(page).toHaveURL(/\/play\/[0-9a-f-]{36}$/);
  const run = page.url();
  await hydrated(page);
  await expect(page.getByTestId("scene-counter")).toHaveText("Opening · 5 scenes");
  await expect(page.getByTestId("option")).toHaveCount(3);
  await accessible(page, "a run at its opening");

  // Scene 1: the first start option; the dialogue streams in, then three new options.
  await page.getByTestId("option").first().click();
  await expect(page.getByText("is writing the scene")).toBeVisible();
  await expect(page.getByTestId("scene")).toHaveCount(1);
  await expect(page.getByTestId("scene-counter")).toHaveText("Scene 1 of 5");
  await expect(page.getByTestId("option")).toHaveCount(3);
  await expect(page.getByTestId("scene").first()).toHaveAttribute("data-status", "complete");

  // Scene 2: an action of one's own.
  await page.getByLabel("Or do something else").fill("I climb the lighthouse stairs.");
  await page.getByTestId("own-action").click();
  await expect(page.getByTestId("scene")).toHaveCount(2);
  await expect(page.getByTestId("scene").nth(1)).toContainText("I climb the lighthouse stairs.");
  await expect(page.getByTestId("option")).toHaveCount(3);
  await accessible(page, "a run in the middle");

  // A reload in the middle: the story resumes where it stopped.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId("scene")).toHaveCount(2);
  await expect(page.getByTestId("scene-counter")).toHaveText("Scene 2 of 5");
  // Reopening the character offers to resume the unfinished story, as does its list of stories.
  await page.goto(character);
  await hydrated(page);
  await expect(page.getByTestId("resume-story")).toContainText("stopped after 2 of 5 scenes");
  await page.getByRole("link", { name: "Resume the story" }).click();
  await expect(page).toHaveURL(run);
  await page.goto(`${character}/play`);
  await hydrated(page);
  await page.getByRole("link", { name: `Resume: ${name}` }).click();
  await expect(page).toHaveURL(run);
  await hydrated(page);

  // Scenes 3 to 5 by options, to the ending screen.
  for (let scene = 3; scene <= 5; scene++) {
    await page.getByTestId("option").nth(scene % 3).click();
    await expect(page.getByTestId("scene")).toHaveCount(scene);
    await expect(page.getByTestId("scene-counter")).toHaveText(`Scene ${scene} of 5`);
  }
  const ending = page.getByTestId("ending");
  await expect(ending).toBeVisible();
  await expect(ending.getByRole("heading", { name: /^The end — / })).toBeVisible();
  await expect(page.getByTestId("choices")).toHaveCount(0);
  await accessible(page, "a run's ending screen");

  // Read back: the whole story after a reload, and the run listed as ended.
  await page.reload();
  await expect(page.getByTestId("scene")).toHaveCount(5);
  await expect(page.getByTestId("ending")).toBeVisible();
  await page.goto(`${character}/play`);
  await expect(page.getByRole("link", { name: `Read: ${name}` })).toBeVisible();
  await page.goto("/dashboard");
  await expect(page.getByTestId("dashboard-runs").getByRole("link", { name: `Read: ${name}` })).toBeVisible();
});
