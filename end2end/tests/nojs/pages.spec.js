// Sign-in and the dashboard work with JavaScript disabled: server-rendered pages and plain forms.
import { test, expect } from "../helpers.js";

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
