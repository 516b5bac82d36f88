// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/certificate.h"

#include <algorithm>
#include <cctype>

namespace fhir::gateway::auth {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  // A trailing space that is escaped ("\ ") belongs to the value.
  while (!text.empty() && text.back() == ' ' && !(text.size() >= 2 && text[text.size() - 2] == '\\')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> normalizedSubject(std::string_view subject) {
  std::vector<std::pair<std::string, std::string>> pairs;
  // Split at unescaped ',', ';' (RFC 1779) and '+' (multi-valued RDNs).
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t index = 0; index <= subject.size(); ++index) {
    if (index < subject.size() && subject[index] == '\\') {
      ++index;
      continue;
    }
    if (index == subject.size() || subject[index] == ',' || subject[index] == ';' || subject[index] == '+') {
      parts.push_back(subject.substr(start, index - start));
      start = index + 1;
    }
  }
  for (std::string_view part : parts) {
    part = trim(part);
    if (part.empty()) continue;
    const size_t equals = part.find('=');
    if (equals == std::string_view::npos) return {};
    std::string type(trim(part.substr(0, equals)));
    const std::string_view value = trim(part.substr(equals + 1));
    if (type.empty() || value.empty()) return {};
    for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    pairs.emplace_back(std::move(type), std::string(value));
  }
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

bool certificateMatches(const AuthClient& client, std::string_view peer_subject) {
  if (client.certificate_subject.empty()) return true;
  const auto peer = normalizedSubject(peer_subject);
  return !peer.empty() && peer == normalizedSubject(client.certificate_subject);
}

}  // namespace fhir::gateway::auth
