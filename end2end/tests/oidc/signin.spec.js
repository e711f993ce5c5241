// Sign in through a real OpenID Connect provider (oidc-provider on loopback): click the provider's
// button, complete its login, land on the dashboard; sign out; a second user cannot open the first
// user's character by URL.
import { test, expect, hydrated, uniqueName, fillBasics, writeAndSave, signInWithIdp } from "../helpers.js";

test("sign in with the provider, sign out, and stay out of someone else's character", async ({ browser }) => {
  const alice = await browser.newPage();
  await signInWithIdp(alice, "alice");

  // Alice makes a character.
  await alice.getByRole("link", { name: "New character" }).first().click();
  await hydrated(alice);
  const name = uniqueName("Sable");
  await fillBasics(alice, { name, age: 40, trait: "kind" });
  await writeAndSave(alice, new RegExp(name));
  const url = alice.url();

  // Sign out ends the session.
  await alice.getByRole("button", { name: "Sign out" }).click();
  await expect(alice).toHaveURL(/\/$/);
  await alice.goto("/dashboard");
  await expect(alice).toHaveURL(/\/signin$/);

  // Bob, in another browser context, cannot open Alice's character by its URL.
  const context = await browser.newContext();
  const bob = await context.newPage();
  await signInWithIdp(bob, "bob");
  await expect(bob.getByText(name)).toHaveCount(0);
  const res = await bob.goto(url);
  expect(res.status()).toBe(404);
  await expect(bob.getByRole("heading", { name: "Not found" })).toBeVisible();
  await expect(bob.getByText(name)).toHaveCount(0);
  await context.close();
});
