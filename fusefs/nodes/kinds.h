// The kinds, one function per kind, each defined in the file of its mount directory.
#pragma once

#include "fusefs/nodes/node_kind.h"

namespace imagefs::kinds {

const NodeKind& Root();       // root_dir.cc
const NodeKind& ImagesDir();  // images_dir.cc
const NodeKind& ImageDir();   // image_dir.cc
const NodeKind& ImageConfig();
const NodeKind& ImageLayersDir();
const NodeKind& ImageLayerLink();
const NodeKind& ImageTar();
const NodeKind& LayersDir();  // layers_dir.cc
const NodeKind& LayerDir();   // layer_dir.cc
const NodeKind& LayerTar();
const NodeKind& LayerParent();
const NodeKind& TagsDir();  // tags_dir.cc
const NodeKind& TagLink();
const NodeKind& ImportDir();  // import_dir_node.cc
const NodeKind& ImportFile();
const NodeKind& ImportLink();
const NodeKind& MetaDir();  // meta_dir.cc
const NodeKind& MetaFile();
const NodeKind& RegistryDir();  // registry_dir.cc
const NodeKind& RegistryImage();
const NodeKind& RegistryConfig();
const NodeKind& RegistryLayersDir();
const NodeKind& RegistryLayerLink();
const NodeKind& RegistryStreamNode();  // registry_stream.cc

}  // namespace imagefs::kinds
