#include "switchboard/common/error.hpp"

#include <array>

namespace switchboard {
namespace {

constexpr std::array<std::string_view, kErrcCount> kNames = {
    "ok",          "bad_frame",    "too_large",    "bad_field",    "bad_utf8",
    "unsupported_version",         "unknown_op",   "no_such_room", "not_member",
    "unavailable", "storage_full", "timeout",      "internal",     "unknown_session",
    "rate_limited", "refused",     "no_such_service",
    "unauthenticated", "limit_reached", "forbidden", "name_unavailable",
    "no_such_message", "message_deleted", "too_late", "no_change", "nested_thread",
};

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard"; }
  std::string message(int value) const override {
    return std::string(errc_name(static_cast<errc>(value)));
  }
};

}  // namespace

std::string_view errc_name(errc code) noexcept {
  auto i = static_cast<std::size_t>(code);
  return i < kNames.size() ? kNames[i] : std::string_view("internal");
}

errc errc_from_name(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<errc>(i);
  return errc::internal;
}

const std::error_category& switchboard_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace switchboard
