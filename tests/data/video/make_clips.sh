#!/bin/sh
# Regenerates the test clips (run once; the clips are committed, ffmpeg is not a test dependency).
# testsrc2 shows a running timestamp and frame number, so every frame differs from the previous.
set -eu
cd "$(dirname "$0")"
src() { echo "testsrc2=size=$1:rate=$2:duration=$3"; }
ff() { ffmpeg -v error -y "$@"; }
ff -f lavfi -i "$(src 320x180 25 2)" -c:v libx264 -pix_fmt yuv420p -crf 32 -preset veryslow -movflags +faststart h264_320x180_2s.mp4
# A clip long enough to watch screens of a sync group stay in step over its length (bench sync).
ff -f lavfi -i "$(src 320x180 25 10)" -c:v libx264 -pix_fmt yuv420p -crf 32 -preset veryslow -movflags +faststart h264_320x180_10s.mp4
ff -f lavfi -i "$(src 160x90 25 0.4)" -c:v libx264 -pix_fmt yuv420p -crf 32 -movflags +faststart h264_160x90_0.4s.mp4
ff -f lavfi -i "$(src 320x180 25 2)" -c:v libvpx-vp9 -pix_fmt yuv420p -crf 45 -b:v 0 vp9_320x180_2s.webm
ff -f lavfi -i "$(src 320x180 25 2)" -c:v libx265 -x265-params log-level=error -pix_fmt yuv420p -crf 32 hevc_320x180_2s.mkv
ff -f lavfi -i "$(src 1279x719 25 1)" -c:v libvpx-vp9 -pix_fmt yuv420p -crf 55 -b:v 0 vp9_1279x719_1s.webm
ff -f lavfi -i "$(src 320x180 25 1)" -f lavfi -i sine=frequency=440:duration=1 -c:v libx264 -pix_fmt yuv420p -crf 32 -c:a aac -b:a 32k -shortest h264_aac_320x180_1s.mp4
ff -f lavfi -i "$(src 1280x720 30 1)" -c:v libx264 -pix_fmt yuv420p -crf 40 -preset veryslow h264_1280x720_1s.mp4
ff -f lavfi -i "$(src 1920x1080 30 1)" -c:v libx264 -pix_fmt yuv420p -crf 40 -preset veryslow h264_1920x1080_1s.mp4
ff -f lavfi -i sine=frequency=440:duration=1 -c:a aac -b:a 24k aac_1s.m4a
# The index (moov) of a non-faststart MP4 sits at the end: cutting the file leaves no index.
ff -f lavfi -i "$(src 320x180 25 2)" -c:v libx264 -pix_fmt yuv420p -crf 32 /tmp/signage-full.mp4
head -c 8000 /tmp/signage-full.mp4 > truncated_h264.mp4
rm -f /tmp/signage-full.mp4
# 4K (the software path scales it down into the zone) and a phone's portrait clip: 720p frames
# whose container says "rotate 90" (libmpv's software renderer aborted on those).
ff -f lavfi -i "$(src 3840x2160 30 1)" -c:v libx264 -pix_fmt yuv420p -crf 40 -preset veryslow h264_3840x2160_1s.mp4
ff -i h264_1280x720_1s.mp4 -c copy -metadata:s:v:0 rotate=90 h264_1280x720_1s_rotate90.mp4
