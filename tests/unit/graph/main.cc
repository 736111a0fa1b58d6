#include <gtest/gtest.h>

#include <clocale>

#include "graph/base/log.h"
#include "test_util.h"

int main(int argc, char** argv) {
  std::setlocale(LC_CTYPE, "C.UTF-8");
  ::testing::InitGoogleTest(&argc, argv);
  imagefs::InitLogging(spdlog::level::err);
  ::testing::UnitTest::GetInstance()->listeners().Append(new imagefs::testing::FdLeakListener);
  return RUN_ALL_TESTS();
}
