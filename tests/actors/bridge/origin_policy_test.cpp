// Who may open a WebSocket on the bridge (actors/bridge/origin_policy.hpp): the
// Origin and Host checks, as pure decisions.
#include <gtest/gtest.h>

#include "switchboard/actors/bridge/origin_policy.hpp"

using namespace switchboard::actors::bridge;

namespace {

OriginPolicy policy(std::vector<std::string> entries = {}) {
  auto p = make_origin_policy(entries);
  if (!p) throw std::runtime_error(p.error().message);
  return *p;
}

bool admitted(const OriginPolicy& p, std::optional<std::string_view> origin, std::string_view host,
              bool tls = false) {
  return !check_upgrade(p, origin, host, tls);
}

}  // namespace

TEST(OriginPolicy, AdmitsTheBridgesOwnPageAndClientsThatAreNotBrowsers) {
  auto p = policy();
  EXPECT_TRUE(admitted(p, "http://127.0.0.1:7410", "127.0.0.1:7410"));
  EXPECT_TRUE(admitted(p, "http://localhost:7410", "localhost:7410"));
  EXPECT_TRUE(admitted(p, "HTTP://LocalHost:7410", "localhost:7410"));
  EXPECT_TRUE(admitted(p, "http://[::1]:7410", "[::1]:7410"));
  EXPECT_TRUE(admitted(p, "https://127.0.0.1:7410", "127.0.0.1:7410", true));
  EXPECT_TRUE(admitted(p, "http://127.0.0.1", "127.0.0.1:80"));
  EXPECT_TRUE(admitted(p, std::nullopt, "127.0.0.1:7410"));  // no Origin: not a browser
}

TEST(OriginPolicy, RefusesOtherSitesAndSaysHowToAdmitThem) {
  auto p = policy();
  for (std::string_view origin : {"http://evil.example", "http://127.0.0.1:8080", "https://127.0.0.1:7410",
                                  "http://127.0.0.1:7410.evil.example", "null", "", "file://"}) {
    auto why = check_upgrade(p, origin, "127.0.0.1:7410", false);
    ASSERT_TRUE(why) << origin;
    EXPECT_NE(why->find("--bridge-origin"), std::string::npos) << *why;
  }
}

TEST(OriginPolicy, RefusesAHostNameItDoesNotServe_DnsRebinding) {
  auto p = policy();
  // A page of evil.example whose name now points at 127.0.0.1: same origin as its Host.
  auto why = check_upgrade(p, "http://evil.example:7410", "evil.example:7410", false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("evil.example"), std::string::npos);
  EXPECT_TRUE(check_upgrade(p, std::nullopt, "", false));           // no Host at all
  EXPECT_TRUE(check_upgrade(p, std::nullopt, std::nullopt, false));
  EXPECT_TRUE(check_upgrade(p, std::nullopt, "bad host!", false));
}

TEST(OriginPolicy, AdmitsTheOriginsGivenAndTheirNamesAsHosts) {
  auto p = policy({"https://chat.example.com", "http://app.example.org:8080/"});
  EXPECT_TRUE(admitted(p, "https://chat.example.com", "127.0.0.1:7410"));
  EXPECT_TRUE(admitted(p, "https://chat.example.com:443", "127.0.0.1:7410"));
  EXPECT_TRUE(admitted(p, "http://app.example.org:8080", "127.0.0.1:7410"));
  EXPECT_TRUE(admitted(p, "https://chat.example.com", "chat.example.com"));  // behind a proxy, by name
  EXPECT_FALSE(admitted(p, "http://chat.example.com", "127.0.0.1:7410"));    // another scheme
  EXPECT_FALSE(admitted(p, "https://evil.example", "chat.example.com"));
}

TEST(OriginPolicy, StarAdmitsAnyOriginOnlyWhenGiven) {
  auto p = policy({"*"});
  EXPECT_TRUE(admitted(p, "http://evil.example", "127.0.0.1:7410"));
  EXPECT_TRUE(admitted(p, "null", "any.name:7410"));
}

TEST(OriginPolicy, AnEntryThatIsNotAnOriginIsRefusedNamingIt) {
  for (std::string bad : {"chat.example.com", "ftp://chat.example.com", "https://chat.example.com/path",
                          "https://user@chat.example.com", "https://", "https://bad host"}) {
    auto p = make_origin_policy({bad});
    ASSERT_FALSE(p) << bad;
    EXPECT_NE(p.error().message.find(bad), std::string::npos) << p.error().message;
  }
}
