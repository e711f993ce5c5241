// API keys in the hydrated app: a key is made with its secret shown once, works against the REST
// API, is listed by its prefix only, and stops working the moment it is revoked. axe-core on the
// page in both themes.
import { test, expect, accessible, hydrated, signIn } from "../helpers.js";

test("make an API key, use it, revoke it", async ({ page, request }) => {
  await signIn(page);
  await page.getByRole("link", { name: "API keys" }).click();
  await expect(page).toHaveURL(/\/settings\/keys$/);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "API keys", level: 1 })).toBeVisible();
  await accessible(page, "the API keys page");

  await page.getByLabel("Name").fill("E2E script");
  await page.getByLabel("May change data").check();
  await page.getByLabel("Expires").selectOption("30");
  await page.getByTestId("create-key").click();
  const shown = page.getByTestId("new-secret");
  await expect(shown).toContainText("shown only this once");
  const secret = (await shown.locator("code").textContent()).trim();
  expect(secret).toMatch(/^pf_[A-Za-z0-9_-]{43}$/);
  const row = page.getByTestId("key-list").getByRole("row", { name: /E2E script/ });
  await expect(row).toContainText("read and write");
  await expect(row).toContainText(secret.slice(0, 11));
  await expect(page.getByTestId("key-list")).not.toContainText(secret);
  await accessible(page, "the API keys page with a new key");

  // The key works against the API, and the API says whose it is.
  const me = await request.get("/api/v1/me", { headers: { authorization: `Bearer ${secret}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).write).toBe(true);

  // A plain HTTP client with the key: create a character, open its chat, stream a reply (SSE).
  const auth = { authorization: `Bearer ${secret}` };
  const character = {
    name: "Keyed Wren", traits: ["curious"], age: "29", gender: "female", voice: "", scenes: "5",
    language: "English", avatar: "tide", backstory: "She mapped the northern coast.",
    story_context: "A harbour town in winter.", opening_line: "You found my map.",
    start_options: ["Ask about the map.", "Offer help.", "Walk away."],
    endings: [
      { kind: "happy", text: "The map leads home." },
      { kind: "tragic", text: "The map is lost at sea." },
      { kind: "ambiguous", text: "The map was never finished." },
    ],
  };
  const created = await request.post("/api/v1/characters", { headers: auth, data: character });
  expect(created.status()).toBe(201);
  const id = (await created.json()).id;
  const chat = await (await request.post(`/api/v1/characters/${id}/chat`, { headers: auth })).json();
  const reply = await request.post(`/api/v1/chats/${chat.session_id}/messages`, {
    headers: auth,
    data: { text: "Where does the map lead?" },
  });
  expect(reply.status()).toBe(200);
  expect(reply.headers()["content-type"]).toContain("text/event-stream");
  const events = await reply.text();
  expect(events).toMatch(/^event: ?accepted$/m);
  expect(events).toMatch(/^event: ?delta$/m);
  expect(events).toMatch(/event: ?finished\ndata: ?\{"status":"complete"\}/);

  // Revoked: it stops at once.
  await row.getByRole("button", { name: "Revoke E2E script" }).click();
  await expect(page.getByTestId("key-list").getByRole("row", { name: /E2E script/ })).toContainText("revoked");
  const after = await request.get("/api/v1/me", { headers: { authorization: `Bearer ${secret}` } });
  expect(after.status()).toBe(401);
  expect(after.headers()["content-type"]).toBe("application/problem+json");

  // After a reload the secret is gone for good; the key is listed as revoked.
  await page.reload();
  await expect(page.getByTestId("new-secret")).toHaveCount(0);
  await expect(page.getByTestId("key-list").getByRole("row", { name: /E2E script/ })).toContainText("revoked");
});
