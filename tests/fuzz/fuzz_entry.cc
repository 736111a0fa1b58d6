// libFuzzer's entry point for every target: each defines imagefs::fuzz::FuzzOne.
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  imagefs::fuzz::QuietLogs();
  imagefs::fuzz::FuzzOne({reinterpret_cast<const char*>(data), size});
  return 0;
}
