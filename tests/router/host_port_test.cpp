// HOST:PORT addresses of the node's HTTP listeners (bridge, metrics).
#include <gtest/gtest.h>

#include "switchboard/router/host_port.hpp"

using namespace switchboard::router;

TEST(HostPort, ReadsIpAddressesAndPortsAndWritesThemBack) {
  auto v4 = parse_host_port("127.0.0.1:7420");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 7420);
  EXPECT_EQ(format_host_port(v4->host, v4->port), "127.0.0.1:7420");
  auto v6 = parse_host_port("[::1]:*");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(format_host_port(v6->host, 9000), "[::1]:9000");
  for (const char* bad : {"localhost:7420", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", ":7420",
                          "300.0.0.1:80", "::1:80x"})
    EXPECT_FALSE(parse_host_port(bad)) << bad;
}

TEST(HttpUrl, ReadsSchemeHostPortAndTarget) {
  auto a = parse_http_url("http://hooks.example.com/in");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->host, "hooks.example.com");
  EXPECT_EQ(a->port, 80);
  EXPECT_EQ(a->target, "/in");
  auto b = parse_http_url("https://[::1]:8443?k=v");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 8443);
  EXPECT_EQ(b->target, "/?k=v");
  auto c = parse_http_url("https://Example.COM");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->target, "/");
  for (const char* bad : {"example.com/in", "ws://example.com/", "http://", "http://a b/", "http://example.com/#top",
                          "http://example.com:99999/", "http://u@example.com/"})
    EXPECT_FALSE(parse_http_url(bad)) << bad;
}
