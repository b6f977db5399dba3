#include "test_helpers.h"

#include <catch2/catch.hpp>

namespace cairn::test {

std::shared_ptr<MemoryDevice> make_formatted_memory(const MkfsParams& p, uint64_t size) {
  auto dev = std::make_shared<MemoryDevice>(size);
  auto e = Engine::format(dev, p);
  REQUIRE(e.ok());
  return dev;
}

std::unique_ptr<Engine> open_engine(std::shared_ptr<BlockDevice> dev, bool read_only) {
  EngineOptions o;
  o.read_only = read_only;
  auto e = Engine::open(std::move(dev), o);
  INFO(e.status().to_string());
  REQUIRE(e.ok());
  return std::move(e).value();
}

void add_kv_tree(std::shared_ptr<BlockDevice> dev, uint64_t id) {
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  REQUIRE(e->create_tree(id, kRootFlagKeyValue).ok());
  REQUIRE(e->commit().ok());
}

}  // namespace cairn::test
