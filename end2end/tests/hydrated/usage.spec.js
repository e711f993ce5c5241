// The usage page in the hydrated app: a model call made through the app shows in the figures, the
// SVG charts and their tables; the period links switch the report; axe-core in both themes, with
// a chart's table open.
import { test, expect, accessible, hydrated, signIn } from "../helpers.js";

const draft = {
  name: "Counted Ilse", traits: ["patient"], age: "41", gender: "female", voice: "", scenes: "5",
  language: "English", avatar: "", backstory: "", story_context: "", opening_line: "",
  start_options: [], endings: [],
};

async function totalCalls(page) {
  const text = await page.getByTestId("usage-totals").locator("dd").first().textContent();
  return Number(text.replace(/,/g, ""));
}

test("the usage page charts what the model did", async ({ page }) => {
  await signIn(page);
  // A model call through the app's own server function (the same session as the page).
  const generated = await page.request.post("/api/characters/generate", { data: { draft, variation: 0 } });
  expect(generated.ok()).toBeTruthy();

  await page.getByRole("link", { name: "Usage" }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Your usage", level: 1 })).toBeVisible();
  await expect(page.getByRole("link", { name: "30 days" })).toHaveAttribute("aria-current", "page");
  const before = await totalCalls(page);
  expect(before).toBeGreaterThanOrEqual(1);
  const chart = page.getByTestId("chart-calls").getByRole("img", { name: /Model calls per day/ });
  await expect(chart).toBeVisible();
  expect(await page.getByTestId("chart-calls").locator("rect.bar.s-character").count()).toBeGreaterThanOrEqual(1);
  await expect(page.getByTestId("by-use").getByRole("row", { name: /Character writing/ })).toBeVisible();
  await accessible(page, "the usage page");

  // Another call, then the 7-day period: the figures follow.
  const again = await page.request.post("/api/characters/generate", { data: { draft, variation: 1 } });
  expect(again.ok()).toBeTruthy();
  await page.getByRole("link", { name: "7 days" }).click();
  await expect(page).toHaveURL(/\/usage\?days=7$/);
  await expect(page.getByRole("link", { name: "7 days" })).toHaveAttribute("aria-current", "page");
  await expect.poll(() => totalCalls(page)).toBe(before + 1);

  // The chart's numbers, as a table: one row a day, today's total counts the calls.
  await page.getByText("Model calls per day, by use: the numbers").click();
  const rows = page.getByTestId("table-calls").locator("tbody tr");
  await expect(rows).toHaveCount(7);
  const todayTotal = Number((await rows.last().locator("td").last().textContent()).replace(/,/g, ""));
  expect(todayTotal).toBeGreaterThanOrEqual(2);
  await accessible(page, "the usage page with a chart's table open");
  // On a phone the tables scroll sideways inside the page: each scrolling region is focusable
  // (the keyboard can scroll it) and named.
  await page.setViewportSize({ width: 360, height: 780 });
  const region = page.getByRole("region", { name: "By use", exact: true });
  await region.focus();
  await expect(region).toBeFocused();
  await accessible(page, "the usage page on a phone");
});
