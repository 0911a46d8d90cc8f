#include <gtest/gtest.h>

#include <set>

#include "switchboard/common/error.hpp"
#include "switchboard/common/utf8.hpp"

using namespace switchboard;

TEST(Errc, WireNamesRoundTrip) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kErrcCount; ++i) {
    auto code = static_cast<errc>(i);
    EXPECT_EQ(errc_from_name(errc_name(code)), code) << errc_name(code);
    EXPECT_TRUE(names.insert(errc_name(code)).second) << "two codes named " << errc_name(code);
  }
  EXPECT_EQ(errc_name(errc::nested_thread), "nested_thread") << "the last code has its own name";
  EXPECT_EQ(errc_name(static_cast<errc>(kErrcCount)), "internal") << "a code newer than this build";
  EXPECT_EQ(errc_name(errc::not_member), "not_member");
  EXPECT_EQ(errc_name(errc::limit_reached), "limit_reached");
  EXPECT_EQ(errc_name(errc::forbidden), "forbidden");
  EXPECT_EQ(errc_from_name("no-such-code"), errc::internal);
  std::error_code ec = errc::too_large;
  EXPECT_EQ(ec.message(), "too_large");
  EXPECT_STREQ(ec.category().name(), "switchboard");
}

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("hello"));
  EXPECT_TRUE(valid_utf8("h\xC3\xA9llo"));            // é
  EXPECT_TRUE(valid_utf8("\xE2\x82\xAC"));            // €
  EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));        // 😀
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));        // U+10FFFF
}

TEST(Utf8, RejectsMalformedText) {
  EXPECT_FALSE(valid_utf8("\x80"));                   // lone continuation
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));               // overlong '/'
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));           // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));           // surrogate U+D800
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));       // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xC3"));                   // truncated
  EXPECT_FALSE(valid_utf8("ab\xE2\x82"));             // truncated at the end
  EXPECT_FALSE(valid_utf8("\xFF"));
}

TEST(Names, RefuseEmptyAndControlCharacters) {
  EXPECT_TRUE(valid_name("general"));
  EXPECT_TRUE(valid_name("caf\xC3\xA9 talk"));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_name("line\nbreak"));
  EXPECT_FALSE(valid_name("del\x7F"));
}
