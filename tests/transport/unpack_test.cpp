// transport::unpack_map / unpack_value: frames read into MsgpackReader nodes (no msgpack
// zone), each limit and malformed shape refused with its code and message, and the
// node storage reused from one frame to the next.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::transport;

namespace {

// A frame built from msgpack bytes written out by hand, so that a test says exactly
// what is on the wire.
std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

template <class T>
std::string packed(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  return to_string(buffer);
}

struct Refusal {
  std::string frame;
  errc code;
  std::string message;
};

void expect_refused(const Result<MsgpackReader>& r, const Refusal& want) {
  ASSERT_FALSE(r.ok()) << "expected " << errc_name(want.code) << ": " << want.message;
  EXPECT_EQ(r.error().code, want.code) << r.error().message;
  EXPECT_EQ(r.error().message, want.message);
}

}  // namespace

TEST(Unpack, EachLimitAndMalformedShapeHasItsCodeAndMessage) {
  Limits tight;
  tight.max_frame = 4096;
  tight.max_string = 8;
  tight.max_array = 3;
  tight.max_map = 2;
  tight.max_depth = 2;
  const std::string padding(80, 'p');  // a frame longer than 64 bytes: the configured caps bind

  const std::vector<Refusal> cases = {
      {std::string(4097, '\xc0'), errc::too_large, "frame of 4097 bytes exceeds the limit of 4096"},
      {"", errc::bad_frame, "empty frame"},
      {bytes({0x82, 0xa1, 'a'}), errc::bad_frame, "truncated msgpack"},
      {bytes({0xa5, 'a', 'b'}), errc::bad_frame, "truncated msgpack"},
      {bytes({0x81, 0xa1, 'a', 0xc1}), errc::bad_frame, "malformed msgpack: parse error"},
      {bytes({0x80, 0x01, 0x02}), errc::bad_frame, "2 trailing bytes after the msgpack value"},
      {bytes({0x91, 0x01}), errc::bad_frame, "frame must be a msgpack map, got an array"},
      {bytes({0x01}), errc::bad_frame, "frame must be a msgpack map, got an unsigned integer"},
      {bytes({0x81, 0x01, 0x02}), errc::bad_frame, "map keys must be strings, got an unsigned integer"},
      {bytes({0x81, 0x91, 0x01, 0x02}), errc::bad_frame, "map keys must be strings, got an array"},
      {bytes({0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02}), errc::bad_frame, "duplicate key 'k'"},
      // Strings, binaries and extensions share max_string (9 bytes > 8).
      {bytes({0x81, 0xa1, 'k', 0xa9, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'}), errc::too_large,
       "string or binary longer than 8"},
      {bytes({0x81, 0xa1, 'k', 0xc4, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0}), errc::too_large,
       "string or binary longer than 8"},
      {bytes({0x81, 0xa1, 'k', 0xc7, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0}), errc::too_large,  // 8 data + type byte
       "string or binary longer than 8"},
      // Three containers nested where two are allowed.
      {bytes({0x81, 0xa1, 'k', 0x91, 0x91, 0x01}), errc::too_large, "nesting deeper than 2"},
      // Headers beyond the configured sizes, in a frame long enough that they could be honest.
      {bytes({0x82, 0xa1, 'k', 0x94, 1, 2, 3, 4, 0xa1, 'p', 0xd9, 80}) + padding, errc::too_large,
       "array larger than 3"},
      {bytes({0x83, 0xa1, 'a', 1, 0xa1, 'b', 2, 0xa1, 'p', 0xd9, 80}) + padding, errc::too_large,
       "map larger than 2"},
  };
  for (const auto& c : cases) expect_refused(unpack_map(c.frame, tight), c);
}

TEST(Unpack, AHeaderAnnouncingMoreElementsThanTheFrameCanHoldIsRefusedBeforeItsElements) {
  Limits generous;
  generous.max_array = std::size_t{1} << 30;
  generous.max_map = std::size_t{1} << 30;
  // Five bytes asking for four billion elements (msgpack-c issue #1013).
  expect_refused(unpack_value(bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), generous),
                 {"", errc::too_large, "an array header announces more elements than the 5-byte frame can hold"});
  // (sic: "an map", the message as it has always been sent)
  expect_refused(unpack_map(bytes({0xdf, 0xff, 0xff, 0xff, 0xff}), generous),
                 {"", errc::too_large, "an map header announces more elements than the 5-byte frame can hold"});
  // Under the cap of 64 a short header is honest enough to be read, and found truncated.
  expect_refused(unpack_value(bytes({0xdc, 0x00, 0x40}), generous), {"", errc::bad_frame, "truncated msgpack"});
}

TEST(Unpack, AValueExactlyAtEachLimitIsRead) {
  Limits tight;
  tight.max_string = 3;
  tight.max_array = 3;
  tight.max_map = 2;
  tight.max_depth = 3;  // the map, the array, the array in it
  auto r = unpack_map(bytes({0x82, 0xa1, 'a', 0x93, 0x91, 0x01, 0xa3, 'x', 'y', 'z', 0xc4, 3, 1, 2, 3,
                             0xa1, 'b', 0x80}),
                      tight);
  ASSERT_TRUE(r.ok()) << r.error().message;
}

TEST(Unpack, NestedMapsAndArraysAreLaidOutInOrderWithTheirExtents) {
  // {"a": [1, {"b": "x"}, []], "c": -3, "d": [true, nil, 1.5, bin "\x01\x02"]}
  const std::string frame = bytes({0x83,                                      // map of 3      [0]
                                   0xa1, 'a',                                 //  "a"          [1]
                                   0x93,                                      //  array of 3   [2]
                                   0x01,                                      //   1           [3]
                                   0x81, 0xa1, 'b', 0xa1, 'x',                //   {"b": "x"}  [4] [5] [6]
                                   0x90,                                      //   []          [7]
                                   0xa1, 'c', 0xfd,                           //  "c": -3      [8] [9]
                                   0xa1, 'd', 0x94, 0xc3, 0xc0,               //  "d": [true, nil,
                                   0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,        //   1.5,
                                   0xc4, 2, 1, 2});                           //   bin]        [10] [11..15]
  auto r = unpack_map(frame, Limits{});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const MsgpackNode* n = &r->root();
  struct Want {
    MsgpackType type;
    std::uint32_t size, extent;
  };
  const std::vector<Want> want = {
      {MsgpackType::map, 3, 16},     {MsgpackType::str, 1, 1},     {MsgpackType::array, 3, 6},
      {MsgpackType::positive_integer, 0, 1}, {MsgpackType::map, 1, 3}, {MsgpackType::str, 1, 1},
      {MsgpackType::str, 1, 1},      {MsgpackType::array, 0, 1},   {MsgpackType::str, 1, 1},
      {MsgpackType::negative_integer, 0, 1}, {MsgpackType::str, 1, 1}, {MsgpackType::array, 4, 5},
      {MsgpackType::boolean, 0, 1},  {MsgpackType::nil, 0, 1},     {MsgpackType::float64, 0, 1},
      {MsgpackType::bin, 2, 1},
  };
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("node " + std::to_string(i));
    EXPECT_EQ(n[i].type, want[i].type);
    EXPECT_EQ(n[i].size, want[i].size);
    EXPECT_EQ(n[i].extent, want[i].extent);
  }
  EXPECT_EQ(n[3].via.u64, 1u);
  EXPECT_EQ(n[6].view(), "x");
  EXPECT_EQ(n[9].via.i64, -3);
  EXPECT_TRUE(n[12].via.boolean);
  EXPECT_EQ(n[14].via.f64, 1.5);
  EXPECT_EQ(n[15].view(), std::string_view("\x01\x02", 2));
  // Strings point into the frame: nothing is copied.
  EXPECT_EQ(n[6].view().data(), frame.data() + 9);

  // FieldReader and the element ranges walk the same nodes.
  FieldReader f(r->root());
  MsgpackElements a;
  ASSERT_TRUE(f.array("a", a));
  ASSERT_EQ(a.size(), 3u);
  std::vector<const MsgpackNode*> elements;
  for (const MsgpackNode& e : a) elements.push_back(&e);
  EXPECT_EQ(elements, (std::vector<const MsgpackNode*>{n + 3, n + 4, n + 7}));
  FieldReader inner(*elements[1]);
  std::string b;
  EXPECT_TRUE(inner.text("b", b, 8));
  EXPECT_EQ(b, "x");
  EXPECT_EQ(f.find("c"), n + 9);
  EXPECT_EQ(f.find("d"), n + 11);
  EXPECT_EQ(f.find("e"), nullptr);
  EXPECT_TRUE(elements[2]->elements().empty());
}

TEST(Unpack, IntegersReadAsMsgpackCReadsThem) {
  // A non-negative value in a signed encoding is an unsigned integer, as in msgpack-c.
  auto r = unpack_value(bytes({0x93, 0xd0, 0x05, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
                               0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
                        Limits{});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const MsgpackNode* n = &r->root();
  EXPECT_EQ(n[1].type, MsgpackType::positive_integer);
  EXPECT_EQ(n[1].via.u64, 5u);
  EXPECT_EQ(n[2].type, MsgpackType::negative_integer);
  EXPECT_EQ(n[2].via.i64, -2);
  EXPECT_EQ(n[3].type, MsgpackType::positive_integer);
  EXPECT_EQ(n[3].via.u64, ~std::uint64_t{0});
}

TEST(Unpack, MsgpackAsConvertsWhatMsgpackCsAsConverts) {
  const std::string frame = packed(std::make_tuple(300, true, std::string("s"), -1));  // the nodes point into it
  auto r = unpack_value(frame, Limits{});
  ASSERT_TRUE(r.ok());
  const MsgpackNode* n = &r->root() + 1;
  EXPECT_EQ(msgpack_as<std::uint64_t>(n[0]), 300u);
  EXPECT_EQ(msgpack_as<std::uint32_t>(n[0]), 300u);
  EXPECT_THROW(msgpack_as<std::uint8_t>(n[0]), msgpack::type_error);  // does not fit
  EXPECT_TRUE(msgpack_as<bool>(n[1]));
  EXPECT_THROW(msgpack_as<std::uint64_t>(n[1]), msgpack::type_error);
  EXPECT_EQ(msgpack_as<std::string>(n[2]), "s");
  EXPECT_THROW(msgpack_as<bool>(n[2]), msgpack::type_error);
  EXPECT_THROW(msgpack_as<std::uint64_t>(n[3]), msgpack::type_error);  // negative
  EXPECT_THROW(msgpack_as<std::string>(n[3]), msgpack::type_error);
}

TEST(Unpack, FramesReadOneAfterAnotherReuseTheSameNodeStorage) {
  auto frame_of = [](std::size_t items) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_map(2);
    pk.pack(std::string_view("id"));
    pk.pack(items);
    pk.pack(std::string_view("items"));
    pk.pack_array(static_cast<std::uint32_t>(items));
    for (std::size_t i = 0; i < items; ++i) {
      pk.pack_array(2);
      pk.pack(std::string_view("cmid"));
      pk.pack(std::string_view("body"));
    }
    return to_string(buffer);
  };
  const std::string big = frame_of(200), small = frame_of(3);
  const MsgpackNode* first = nullptr;
  std::size_t capacity = 0;
  {
    auto r = unpack_map(big, Limits{});
    ASSERT_TRUE(r.ok()) << r.error().message;
    first = &r->root();
    capacity = r->node_capacity();
    EXPECT_GE(capacity, 5u + 200 * 3);
  }
  for (int i = 0; i < 1000; ++i) {
    auto r = unpack_map(i % 2 ? big : small, Limits{});
    ASSERT_TRUE(r.ok());
    // The storage given back by the last frame is the one this frame gets, no larger.
    ASSERT_EQ(&r->root(), first) << "frame " << i;
    ASSERT_EQ(r->node_capacity(), capacity) << "frame " << i;
  }
  // A value read while a frame is held gets storage of its own.
  auto outer = unpack_map(small, Limits{});
  auto inner = unpack_map(big, Limits{});
  ASSERT_TRUE(outer.ok() && inner.ok());
  EXPECT_NE(&outer->root(), &inner->root());
  FieldReader f(outer->root());
  std::uint64_t id = 0;
  EXPECT_TRUE(f.u64("id", id));
  EXPECT_EQ(id, 3u);
}
