// ImageArchive: a `docker save` tarball of one image or several (layers they share
// appear once), laid out in advance (exact size) and assembled on read from generated
// headers and the stored layer blobs, so nothing is copied or written. Modern images get Docker's
// layout (manifest.json, repositories, <config>.json and a legacy <v1id>/{VERSION,json,layer.tar}
// directory per layer); legacy images get the legacy layout with their own v1 IDs and JSON, so that
// loading the archive again gives the same image ID. Immutable and thread-safe once built.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/store.h"

namespace imagefs {

class ImageArchive {
 public:
  static Result<std::shared_ptr<const ImageArchive>> Build(const Store& store,
                                                           const std::string& image_id);
  // Several images in one archive. Legacy images cannot join modern ones: `docker load`
  // reads only manifest.json when there is one, and legacy images have no entry there.
  static Result<std::shared_ptr<const ImageArchive>> Build(
      const Store& store, const std::vector<std::string>& image_ids);
  // The size Build's archive would have, from the store's records alone: no blob is
  // opened (for a stat of image.tar, which must not build the archive).
  static Result<uint64_t> Measure(const Store& store, const std::string& image_id);

  uint64_t size() const { return size_; }
  // Reads up to len bytes at off; short only at the end.
  Result<size_t> Read(uint64_t off, size_t len, char* buf) const;

 private:
  struct Segment {
    uint64_t offset;  // in the archive
    uint64_t length;
    std::string bytes;                      // generated data, or empty when `blob` holds the data
    std::shared_ptr<const LayerBlob> blob;  // the layer tar, read from its start
  };
  struct Plan;  // what has been laid out so far (image_archive.cc)
  static Result<std::shared_ptr<ImageArchive>> Layout(const Store& store,
                                                      const std::vector<std::string>& image_ids,
                                                      bool open_blobs);
  Status AddLegacyImage(const Store& store, const ImageInfo& image, Plan& plan);
  Status AddModernImage(const Store& store, const ImageInfo& image, std::string config, Plan& plan);
  void AddBytes(std::string bytes);
  void AddFile(const std::string& name, std::string content, int64_t mtime);
  // A layer's tar member; its blob is opened only with open_blob (else only its size counts).
  Status AddLayerFile(const std::string& name, const Store& store, const LayerInfo& layer,
                      bool open_blob, int64_t mtime);
  void AddDir(const std::string& name, int64_t mtime);
  void Pad();

  std::vector<Segment> segments_;
  uint64_t size_ = 0;
};

}  // namespace imagefs
