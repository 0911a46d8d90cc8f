// Reading a frame allocates nothing once the thread's node storage is warm. A binary of
// its own, because it replaces the global operator new to count what the thread
// allocates (msgpack::unpack, which this replaced, allocates its msgpack::zone with new
// on every frame).
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "switchboard/transport/codec.hpp"

namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;

void* allocate(std::size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace switchboard;
using namespace switchboard::transport;

namespace {

// Allocations made by `read` on this thread.
template <class Read>
std::size_t allocations_of(Read&& read) {
  allocations = 0;
  counting = true;
  read();
  counting = false;
  return allocations;
}

std::string batch_frame(std::size_t items) {
  Request request;
  request.id = 7;
  PublishBatch batch;
  batch.room = "lobby";
  batch.user = "alice";
  for (std::size_t i = 0; i < items; ++i)
    batch.items.push_back({"cmid-" + std::to_string(i), std::string(100, 'b')});
  request.body = std::move(batch);
  return encode_request(request);
}

}  // namespace

TEST(UnpackAllocations, TheCounterSeesAnAllocation) {
  EXPECT_GE(allocations_of([] { std::make_unique<std::string>(100, 'x'); }), 1u);
}

TEST(UnpackAllocations, AWarmReadOfAFrameAndItsFieldsAllocatesNothing) {
  const Limits limits;
  const std::string publish =
      encode_request({1, Publish{"lobby", "alice", "c-1", std::string(100, 'b')}});
  const std::string batch = batch_frame(100);
  auto read = [&](const std::string& frame) {
    auto r = unpack_map(frame, limits);
    ASSERT_TRUE(r.ok()) << r.error().message;
    FieldReader f(r->root());
    std::uint64_t id = 0;
    ASSERT_TRUE(f.u64("id", id));
    MsgpackElements items;
    if (f.find("items")) {
      ASSERT_TRUE(f.array("items", items));
      std::size_t bytes = 0;
      for (const MsgpackNode& item : items) bytes += (&item + 2)->size;
      ASSERT_EQ(bytes, items.size() * 100);
    }
  };
  read(batch);  // warm: the thread's storage grows to the larger frame once
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 1000; ++i) read(i % 2 ? batch : publish);
            }),
            0u);
  // A value read while a frame is held needs a second store; once it is warm too,
  // nesting allocates nothing either.
  auto nested = [&] {
    auto outer = unpack_map(batch, limits);
    auto inner = unpack_value(publish, limits);
    ASSERT_TRUE(outer.ok() && inner.ok());
  };
  nested();
  EXPECT_EQ(allocations_of([&] {
              for (int i = 0; i < 100; ++i) nested();
            }),
            0u);
}
