#!/usr/bin/env bash
# Runs in the Dockerfile's `runtime-deps` stage: copies into OUT_DIR only what
# the server loads - the GStreamer plugins it can use, GStreamer's
# plugin scanner, NSS's crypto modules (libsrtp2), GIO's TLS module
# (souphttpsrc over https), libsoup (dlopened by souphttpsrc) - with the shared libraries they link,
# transitively, minus the files the base image already has. Debian's
# plugin packages depend on GTK, Mesa/LLVM, SDL, JACK, ... for plugins a
# media server never loads; installed whole they make a 690 MB image.
#
#   collect-runtime.sh BASE_FILE_LIST OUT_DIR
set -euo pipefail
base_list="$1"
out="$2"
arch=x86_64-linux-gnu
plugdir=/usr/lib/$arch/gstreamer-1.0

# Plugins no server code path loads (display/GUI/GPU sinks, speech, MIDI,
# audio servers, capture hardware, adaptive streaming, exotic codecs) and
# that pull in the heavy libraries. Kept on purpose for the filters:
# pango (textoverlay), cairo, gdkpixbuf (image overlays), png, jpeg.
deny='gtk|gtkwayland|opengl|vulkan|va|msdk|qsv|sdl|flite|openexr|zbar|fluidsynthmidi|ladspa|lv2|openmpt|jack|pulseaudio|caca|aasink|ximagesink|xvimagesink|1394|dc1394|dv|waylandsink|kms|directfb|rsvg|gme|modplug|wildmidi|openal|bluez|ldac|openaptx|zxing|qrencode|wpe|cdparanoia|cdio|dvdread|resindvd|bs2b|soundtouch|spandsp|sid|chromaprint|microdns|neonhttpsrc|rtmp|rtmp2|srt|mpeg2enc|mplex|shout2|libvisual|teletext|v4l2codecs|uvch264|dash|smoothstreaming|ttmlsubs|nvcodec|opencv|svtav1|rav1e|x265|de265|openjpeg|webp|fdkaac|ximage|xvimage|alsa|pipewire|rist|sctp|isac|lc3|avtp|ipcpipeline|mse|sndfile|ladspa|lv2|aom|dav1d|jpegxl|heif|smoothstreaming|hls|adaptivedemux2|soundtouch|rsvg|assrender|openni2|fluidsynth|sdpsrc_unused'

# FFmpeg (gst-libav) alone brings ~130 MB of codec libraries (x265, SVT-AV1,
# codec2, rsvg, flite, LAPACK...); the server falls back to openh264dec for
# H.264 and voaacenc for AAC. KMS_IMAGE_LIBAV=1 keeps it.
if [[ "${KMS_IMAGE_LIBAV:-0}" != 1 ]]; then
  deny="$deny|libav"
fi
mapfile -t plugins < <(ls "$plugdir"/libgst*.so | grep -Ev "/libgst($deny)\.so$")
extra=(
  /usr/lib/$arch/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner
  /usr/lib/$arch/gstreamer1.0/gstreamer-1.0/gst-ptp-helper
  # PlateDetectorFilter's OCR (crates/kms-platedetector/src/ocr.rs).
  /usr/bin/tesseract
  # KMS_EXTERNAL_IPV4/IPV6=auto's DNS discovery (docker/entrypoint.sh).
  /usr/bin/dig
)
# dlopened, so invisible to ldd: NSS's crypto modules (Debian builds libsrtp2
# against NSS: without softokn/freebl every SRTP stream fails with
# "init_fail" and WebRTC carries no media), GIO's TLS, libsoup.
for f in /usr/lib/$arch/nss/*.so /usr/lib/$arch/libsoftokn3.so /usr/lib/$arch/libfreebl3.so /usr/lib/$arch/libfreeblpriv3.so /usr/lib/$arch/libnssdbm3.so /usr/lib/$arch/libnssckbi.so /usr/lib/$arch/gio/modules/libgiognutls.so /usr/lib/$arch/libsoup-3.0.so.0 /usr/lib/$arch/libsoup-2.4.so.1; do
  [[ -e "$f" ]] && extra+=("$f")
done

declare -A seen=()
queue=("${plugins[@]}" "${extra[@]}")
while ((${#queue[@]})); do
  f="${queue[0]}"
  queue=("${queue[@]:1}")
  [[ -n "${seen[$f]:-}" ]] && continue
  seen[$f]=1
  while read -r lib; do
    [[ -n "$lib" && -z "${seen[$lib]:-}" ]] && queue+=("$lib")
  done < <(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done

mkdir -p "$out"
# The kept plugin list, for the final stage's "no unresolved library" check.
mkdir -p "$out/usr/share/kurento"
printf '%s\n' "${plugins[@]}" >"$out/usr/share/kurento/gstreamer-plugins.txt"
n=0
for f in "${!seen[@]}"; do
  real="$(readlink -f "$f")"
  # usrmerge: /lib is a symlink to usr/lib; never create a real /lib here.
  f="${f/#\/lib\//\/usr\/lib\/}"
  # Files of the base image stay where they are.
  if grep -qxF "$f" "$base_list" || grep -qxF "$real" "$base_list"; then continue; fi
  mkdir -p "$out$(dirname "$f")"
  cp -a "$real" "$out$(dirname "$f")/" 2>/dev/null || true
  [[ "$f" != "$real" ]] && ln -sf "$(basename "$real")" "$out$f" 2>/dev/null || true
  n=$((n + 1))
done
# tesseract's English model and the config files `-c`/`--psm` runs read;
# not the 11 MB orientation model (osd), which `--psm 7` never loads.
tessdata=/usr/share/tesseract-ocr/5/tessdata
mkdir -p "$out$tessdata"
cp -a "$tessdata/eng.traineddata" "$tessdata/configs" "$tessdata/tessconfigs" "$out$tessdata/"
# Data the kept libraries read at run time.
for d in /etc/ssl /etc/fonts /usr/share/fonts /usr/lib/$arch/ossl-modules /usr/share/ca-certificates /usr/lib/ssl /usr/share/glib-2.0/schemas /usr/lib/$arch/gio/modules /usr/share/gstreamer-1.0 /usr/share/gst-plugins-base /usr/share/gst-plugins-bad; do
  [[ -e "$d" ]] && mkdir -p "$out$(dirname "$d")" && cp -a "$d" "$out$(dirname "$d")/"
done
echo "collect-runtime: ${#plugins[@]} plugins, $n files, $(du -sh "$out" | cut -f1)"
