// imagefs: the only place that wires the modules together.
#include <exception>
#include <iostream>
#include <new>

#include "fusefs/cli/cli.h"

int main(int argc, char** argv) {
  try {
    return imagefs::RunCli(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "imagefs: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "imagefs: internal error: " << e.what() << "\n";
  }
  return 1;
}
