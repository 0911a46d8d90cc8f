#include "switchboard/actors/bridge/static_files.hpp"

#include <system_error>

namespace switchboard::actors::bridge {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> decode_target(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  if (target.empty() || target.front() != '/') return std::nullopt;  // not origin-form ("http://...", "*")
  std::string path;
  path.reserve(target.size());
  for (std::size_t i = 0; i < target.size(); ++i) {
    char c = target[i];
    if (c == '%') {
      if (i + 2 >= target.size()) return std::nullopt;
      const int hi = hex_value(target[i + 1]), lo = hex_value(target[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '\\') return std::nullopt;
    path += c;
  }
  return path;
}

Result<StaticFiles> StaticFiles::open(const std::filesystem::path& root) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(root, ec);
  if (ec || !std::filesystem::is_directory(canonical, ec))
    return make_error(errc::bad_field, "the web directory '" + root.string() + "' is not a directory");
  return StaticFiles(std::move(canonical));
}

std::optional<std::filesystem::path> StaticFiles::resolve(std::string_view target) const {
  auto decoded = decode_target(target);
  if (!decoded) return std::nullopt;
  if (decoded->back() == '/') *decoded += "index.html";
  // Each part is a name inside the root: no empty part (an absolute "//x" would replace
  // the root when joined), no "." or "..".
  std::filesystem::path relative;
  std::string_view rest(*decoded);
  rest.remove_prefix(1);
  while (true) {
    const auto slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (part.empty() || part == "." || part == "..") return std::nullopt;
    relative /= std::string(part);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  // Symlinks followed, the file must still be inside the root.
  std::error_code ec;
  const auto file = std::filesystem::canonical(root_ / relative, ec);
  if (ec) return std::nullopt;
  const auto inside = file.lexically_relative(root_);
  if (inside.empty() || *inside.begin() == ".." || *inside.begin() == ".") return std::nullopt;
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  return file;
}

const char* mime_type(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace switchboard::actors::bridge
