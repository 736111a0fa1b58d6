// The names in a layer's tar that are format, not files of the image: OCI whiteouts,
// Docker's AUFS metadata, and the stargz/eStargz table of contents and landmarks. The one
// place that says which names a tree hides or applies (tree.cc applies them).
#pragma once

#include <string_view>

#include "graph/tar_index.h"

namespace imagefs {

// OCI whiteouts: ".wh.NAME" deletes NAME below; ".wh..wh..opq" empties its directory below.
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaque = ".wh..wh..opq";
// Docker's AUFS metadata at a layer's root (.wh..wh.plnk/, .wh..wh.aufs, .wh..wh.orph/):
// never shown, as Docker's UnpackLayer does; files in .wh..wh.plnk/ are hardlink targets.
inline constexpr std::string_view kAufsMetaPrefix = ".wh..wh.";
inline constexpr std::string_view kAufsLinkDir = ".wh..wh.plnk";
// Stargz and eStargz layers end with their table of contents and may carry landmark files
// at their root.
inline constexpr std::string_view kStargzToc = "stargz.index.json";

bool IsAufsMeta(std::string_view path);
// A layer in the stargz formats: its last entry is a stargz table of contents at its root,
// or it has a landmark there (a one-byte .prefetch.landmark or .no.prefetch.landmark).
bool IsStargzLayer(const TarIndex& index);
// In such a layer: the TOC and the landmarks, hidden from every tree as stargz-snapshotter
// hides them, so that the layer shows what its plain original shows (layer.tar keeps them:
// it is the layer's bytes).
bool IsStargzMeta(std::string_view path);

}  // namespace imagefs
