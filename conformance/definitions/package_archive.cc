// SPDX-License-Identifier: Apache-2.0
#include "conformance/definitions/package_archive.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace fhir::definitions {
namespace {

Result<std::string> gunzip(const std::string& file, size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{"cannot read " + file};
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string compressed = buffer.str();
  z_stream stream{};
  // 16 + MAX_WBITS: gzip wrapper only.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return Error{file + ": cannot start zlib"};
  stream.next_in = reinterpret_cast<Bytef*>(compressed.data());
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  char chunk[65536];
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      inflateEnd(&stream);
      return Error{file + ": not a gzip-compressed package (" +
                   std::string(stream.msg ? stream.msg : "zlib error " + std::to_string(status)) + ")"};
    }
    out.append(chunk, sizeof(chunk) - stream.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&stream);
      return Error{file + ": uncompressed package larger than " + std::to_string(max_bytes) + " bytes"};
    }
    if (status != Z_STREAM_END && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      return Error{file + ": truncated gzip stream"};
    }
  }
  inflateEnd(&stream);
  return out;
}

std::string field(const char* block, size_t offset, size_t size) {
  size_t length = 0;
  while (length < size && block[offset + length] != '\0') ++length;
  return std::string(block + offset, length);
}

// Octal size field (or GNU base-256 for sizes above 8 GB, which no package has).
bool octal(const char* block, size_t offset, size_t size, uint64_t& value) {
  value = 0;
  size_t index = 0;
  while (index < size && block[offset + index] == ' ') ++index;
  bool any = false;
  for (; index < size; ++index) {
    char c = block[offset + index];
    if (c == '\0' || c == ' ') break;
    if (c < '0' || c > '7') return false;
    value = value * 8 + static_cast<uint64_t>(c - '0');
    any = true;
  }
  return any;
}

// The `path=` record of a pax extended header ("<len> path=<value>\n" records).
std::string paxPath(std::string_view records) {
  while (!records.empty()) {
    size_t space = records.find(' ');
    if (space == std::string_view::npos) break;
    size_t length = 0;
    for (char c : records.substr(0, space)) {
      if (c < '0' || c > '9') return {};
      length = length * 10 + static_cast<size_t>(c - '0');
    }
    if (length <= space || length > records.size()) break;
    std::string_view record = records.substr(space + 1, length - space - 1);
    if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
    if (record.rfind("path=", 0) == 0) return std::string(record.substr(5));
    records.remove_prefix(length);
  }
  return {};
}

}  // namespace

Result<std::vector<ArchiveFile>> readTarGz(const std::string& file, const std::string& suffix,
                                           size_t max_bytes) {
  auto tar = gunzip(file, max_bytes);
  if (!tar.ok()) return tar.error();
  const std::string& data = *tar;
  std::vector<ArchiveFile> files;
  std::string long_name;
  size_t offset = 0;
  while (offset + 512 <= data.size()) {
    const char* block = data.data() + offset;
    bool zero = true;
    for (size_t index = 0; index < 512 && zero; ++index) zero = block[index] == '\0';
    if (zero) break;  // end of archive
    uint64_t size = 0;
    if (!octal(block, 124, 12, size)) {
      return Error{file + ": malformed tar header at byte " + std::to_string(offset)};
    }
    char type = block[156];
    size_t body = offset + 512;
    if (size > data.size() - body) return Error{file + ": truncated tar entry at byte " + std::to_string(offset)};
    std::string_view content(data.data() + body, static_cast<size_t>(size));
    std::string name = field(block, 0, 100);
    if (std::memcmp(block + 257, "ustar", 5) == 0) {
      std::string prefix = field(block, 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    if (!long_name.empty()) {
      name = long_name;
      long_name.clear();
    }
    if (type == 'L') {
      long_name = std::string(content.substr(0, content.find('\0')));
    } else if (type == 'x') {
      long_name = paxPath(content);
    } else if ((type == '0' || type == '\0') && name.size() >= suffix.size() &&
               name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      files.push_back(ArchiveFile{name, std::string(content)});
    }
    offset = body + static_cast<size_t>((size + 511) / 512 * 512);
  }
  return files;
}

}  // namespace fhir::definitions
