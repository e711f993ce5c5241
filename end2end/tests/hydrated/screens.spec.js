// Visual smoke test: the main pages in the light and the dark theme at desktop width, and at a
// phone's 360 px. Each page must render its heading and fit the width with no sideways scroll;
// the screenshots are kept as test artefacts (test-results/screenshots), not compared.
import { test, expect, hydrated, signIn, uniqueName, createCharacter } from "../helpers.js";

const widths = [
  ["desktop", { width: 1280, height: 900 }],
  ["phone", { width: 360, height: 780 }],
];

test("the main pages, light and dark, desktop and phone: no sideways scroll", async ({ page }, info) => {
  await signIn(page);
  const name = uniqueName("Ada");
  const chat = await createCharacter(page, { name, age: 31, trait: "curious" });
  const sheet = chat.replace(/\/chat$/, "");

  const pages = [
    ["dashboard", "/dashboard", "Your characters"],
    ["character", sheet, name],
    ["chat", chat, name],
    ["wizard", "/characters/new", "New character"],
    ["trash", "/trash", "Trash"],
    ["twin", "/twin", "Your twin"],
    ["matches", "/matches", "Matches"],
    ["usage", "/usage", "Your usage"],
    ["keys", "/settings/keys", "API keys"],
  ];
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [label, size] of widths) {
      await page.setViewportSize(size);
      for (const [key, path, heading] of pages) {
        await page.goto(path);
        await expect(page.getByRole("heading", { name: heading, level: 1 }).first()).toBeVisible();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${key} at ${label} width scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);
        await page.screenshot({ path: info.outputPath(`screenshots/${key}-${scheme}-${label}.png`), fullPage: true });
      }
    }
  }
});
