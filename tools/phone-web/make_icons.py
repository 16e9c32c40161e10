#!/usr/bin/env python3
"""Draw the app icons (PNG) into src/: a speech bubble on the app's blue. Run once; the PNGs are committed."""

from pathlib import Path

from PIL import Image, ImageDraw

SRC = Path(__file__).resolve().parent / "src"
BLUE, WHITE = (11, 79, 148, 255), (255, 255, 255, 255)


def icon(size: int, maskable: bool) -> Image.Image:
    img = Image.new("RGBA", (size, size), BLUE if maskable else (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if not maskable:
        d.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 5, fill=BLUE)
    pad = size * (0.28 if maskable else 0.2)  # maskable icons keep their content in the central safe zone
    box = (pad, pad, size - pad, size - pad * 1.35)
    d.rounded_rectangle(box, radius=size // 10, fill=WHITE)
    tail_x = box[0] + (box[2] - box[0]) * 0.3
    d.polygon([(tail_x, box[3] - 2), (tail_x + size * 0.12, box[3] - 2), (tail_x - size * 0.02, box[3] + size * 0.1)], fill=WHITE)
    y = (box[1] + box[3]) / 2
    for i in range(3):
        cx = box[0] + (box[2] - box[0]) * (0.3 + 0.2 * i)
        r = size * 0.035
        d.ellipse((cx - r, y - r, cx + r, y + r), fill=BLUE)
    return img


if __name__ == "__main__":
    icon(192, False).save(SRC / "icon-192.png", optimize=True)
    icon(512, False).save(SRC / "icon-512.png", optimize=True)
    icon(512, True).save(SRC / "icon-maskable-512.png", optimize=True)
