// libFuzzer target: the topology parser (router::parse_topology), which reads files
// operators write by hand. Any text must give a topology or errors: no crash, no
// sanitizer report. A file that parses has at least one node, and every error names
// the file with a line and column, as docs/TOPOLOGY.md promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "switchboard/router/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto loaded = switchboard::router::parse_topology(text, "fuzz.toml");
  if (loaded.ok() && loaded.topology.nodes.empty()) std::abort();
  for (const auto& e : loaded.errors)
    if (e.message.empty() || e.to_string().rfind("fuzz.toml:", 0) != 0) std::abort();
  return 0;
}
