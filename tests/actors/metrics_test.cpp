// The metrics' building blocks: histograms fed in batches, error counts by code, and
// the renderings a scrape gets.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "switchboard/actors/metrics.hpp"

using namespace switchboard;
using namespace switchboard::actors;

namespace {
prometheus::ClientMetric::Histogram histogram_of(const NodeMetrics& metrics, const std::string& name) {
  for (const auto& family : metrics.collect())
    if (family.name == name) return family.metric.at(0).histogram;
  ADD_FAILURE() << "no family " << name;
  return {};
}
}  // namespace

TEST(Metrics, LatenciesReachTheHistogramAtFlushInTheirLeBucket) {
  NodeMetrics metrics("n1");
  auto& ack = metrics.chat().publish_ack;
  ack.observe(0.0001);  // on a bound: counted in that bucket (le)
  ack.observe(0.0003);
  ack.observe(20.0);    // past the last bound: +Inf only
  EXPECT_EQ(histogram_of(metrics, "switchboard_publish_ack_seconds").sample_count, 0u) << "nothing before flush";
  ack.flush();
  ack.flush();  // a second flush adds nothing
  auto h = histogram_of(metrics, "switchboard_publish_ack_seconds");
  EXPECT_EQ(h.sample_count, 3u);
  EXPECT_NEAR(h.sample_sum, 20.0004, 1e-9);
  ASSERT_EQ(h.bucket.size(), kLatencyBuckets.size() + 1);
  EXPECT_EQ(h.bucket[0].cumulative_count, 1u);  // le 0.0001
  EXPECT_EQ(h.bucket[2].cumulative_count, 2u);  // le 0.0005
  EXPECT_EQ(h.bucket[kLatencyBuckets.size() - 1].cumulative_count, 2u);  // le 10
  EXPECT_EQ(h.bucket.back().cumulative_count, 3u);                        // +Inf
}

TEST(Metrics, ErrorsAreCountedUnderTheirCodeAndEveryCodeIsPresent) {
  NodeMetrics metrics("n1");
  metrics.chat().messages.error(errc::not_member);
  metrics.chat().messages.error(errc::not_member);
  metrics.presence().messages.error(errc::unknown_session);
  metrics.chat().messages.error(static_cast<errc>(1000));  // a code newer than this build: internal
  std::map<std::string, double> chat;
  for (const auto& family : metrics.collect()) {
    if (family.name != "switchboard_errors_total") continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      EXPECT_EQ(labels["node"], "n1");
      if (labels["actor"] == "chat") chat[labels["code"]] = m.counter.value;
      if (labels["actor"] == "presence" && labels["code"] == "unknown_session") {
        EXPECT_EQ(m.counter.value, 1);
      }
    }
  }
  EXPECT_EQ(chat["not_member"], 2);
  EXPECT_EQ(chat["internal"], 1);
  EXPECT_EQ(chat["rate_limited"], 0);
  EXPECT_EQ(chat.size(), kErrcCount) << "one child per code, from the start";
}

TEST(Metrics, TextAndJsonCarryTheSameFamilies) {
  NodeMetrics metrics("n1");
  metrics.chat().messages.received(0);
  bool collected = false;
  metrics.add_collector([&](std::vector<prometheus::MetricFamily>& out) {
    collected = true;
    out.push_back(FamilyBuilder("switchboard_test_total", "a test", prometheus::MetricType::Counter, "n1")
                      .add({{"actor", "x"}}, 7)
                      .take());
  });
  const std::string text = metrics.text();
  EXPECT_TRUE(collected);
  EXPECT_NE(text.find("# TYPE switchboard_messages_received_total counter"), std::string::npos);
  EXPECT_NE(text.find("switchboard_test_total{node=\"n1\",actor=\"x\"} 7"), std::string::npos) << text;
  auto json = nlohmann::json::parse(metrics.json());
  EXPECT_EQ(json["node"], "n1");
  std::size_t families = 0;
  for (const auto& family : json["metrics"]) {
    ++families;
    EXPECT_NE(text.find("# TYPE " + family["name"].get<std::string>() + " " + family["type"].get<std::string>()),
              std::string::npos)
        << family["name"];
  }
  EXPECT_EQ(families, metrics.collect().size());
}
