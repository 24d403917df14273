#!/bin/sh
# Regenerates still.heic, a 64x36 HEIF still (four coloured quadrants). Made once with libheif's
# heif-enc (Debian: libheif-examples), which neither the tests nor the server need: neither
# Pillow nor this FFmpeg decodes HEIF, so the server must recognise and refuse it.
set -eu
cd "$(dirname "$0")"
python3 -c "
from PIL import Image, ImageDraw
picture = Image.new('RGB', (64, 36))
draw = ImageDraw.Draw(picture)
for box, colour in [((0, 0, 31, 17), 'red'), ((32, 0, 63, 17), 'lime'),
                    ((32, 18, 63, 35), 'white'), ((0, 18, 31, 35), 'blue')]:
    draw.rectangle(box, fill=colour)
picture.save('/tmp/signage-quadrants.png')
"
heif-enc -q 50 -o still.heic /tmp/signage-quadrants.png
rm -f /tmp/signage-quadrants.png
