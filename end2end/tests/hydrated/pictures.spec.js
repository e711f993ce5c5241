// A picture of one's own, with the keyboard alone: on a character's page choose a PNG, press
// Upload, and the page comes back showing it as the portrait; the dashboard shows its thumbnail.
// axe-core in both themes.
import { deflateSync } from "node:zlib";
import { test, expect, accessible, hydrated, signIn, uniqueName } from "../helpers.js";

/** CRC-32 (the PNG chunk checksum). */
function crc32(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A `w` × `h` RGB PNG, a gradient. */
function png(w, h) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + 3 * w);
    for (let x = 0; x < w; x++) row.set([(x * 255) / w, (y * 255) / h, 140], 1 + 3 * x);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function character(name) {
  return {
    name, traits: ["steady"], age: "40", gender: "male", voice: "", scenes: "5", language: "English",
    avatar: "dusk", backstory: "A painter of harbours.", story_context: "A port town.",
    opening_line: "Hold still.", start_options: ["Pose.", "Leave.", "Ask."],
    endings: [
      { kind: "happy", text: "A portrait." },
      { kind: "tragic", text: "A fire." },
      { kind: "ambiguous", text: "A sketch." },
    ],
  };
}

test("upload a picture for a character with the keyboard alone", async ({ page }) => {
  await signIn(page);
  const name = uniqueName("Rune");
  const saved = await page.request.post("/api/characters/save", { data: { draft: character(name) } });
  expect(saved.ok()).toBeTruthy();
  const id = await saved.json();
  await page.goto(`/characters/${id}`);
  await hydrated(page);
  await expect(page.locator("img.portrait")).toHaveCount(0);

  // The file is chosen (a file dialog is the browser's own), then Upload by keyboard.
  const file = page.getByLabel("Upload a picture");
  await file.focus();
  await file.setInputFiles({ name: "rune.png", mimeType: "image/png", buffer: png(300, 450) });
  await page.keyboard.press("Tab");
  await expect(page.getByRole("button", { name: "Upload", exact: true })).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(new RegExp(`/characters/${id}$`));
  const portrait = page.getByRole("img", { name: `${name}'s picture` });
  await expect(portrait).toBeVisible();
  await expect(portrait).toHaveAttribute("src", /\/pictures\/[0-9a-f-]+\/portrait\.jpg$/);
  // Loaded: the re-encoded portrait, its 2:3 size kept.
  await expect
    .poll(() => portrait.evaluate((img) => [img.naturalWidth, img.naturalHeight]))
    .toEqual([300, 450]);
  await accessible(page, "a character's page with a picture");

  // The dashboard's card shows the thumbnail.
  await page.goto("/dashboard");
  await hydrated(page);
  const card = page.getByTestId("character-list").getByRole("listitem").filter({ hasText: name });
  const thumb = card.locator("img.avatar");
  await expect(thumb).toHaveAttribute("src", /\/pictures\/[0-9a-f-]+\/thumb\.jpg$/);
  await expect.poll(() => thumb.evaluate((img) => img.naturalWidth)).toBe(160);
});
