// SPDX-License-Identifier: Apache-2.0
#pragma once

// Deterministic resource ids and identifier checks shared by all mappers.

#include <initializer_list>
#include <string>
#include <string_view>

namespace fhir {

// A FHIR resource id ([A-Za-z0-9\-\.]{1,64}) derived from the source's own keys: SHA-256 over
// the parts joined with a unit separator, its first 128 bits written as an RFC 9562 version-8
// UUID (so `urn:uuid:<id>` is a valid URI too). The same parts always give the same id, which is
// what makes re-sent events idempotent.
std::string deriveId(std::initializer_list<std::string_view> parts);

// deriveId() of parts already joined with '\x1f', written into `id` (its buffer reused: the
// mapping engine derives several ids per record).
void deriveIdInto(std::string_view joined, std::string& id);
// deriveId(parts) written into `id`, the parts joined in `joined` (both buffers reused).
void deriveIdInto(std::initializer_list<std::string_view> parts, std::string& joined, std::string& id);

// Lower-case hex SHA-256 of `bytes`.
std::string sha256Hex(std::string_view bytes);

// sha256Hex() written into `hex` (its buffer reused).
void sha256HexInto(std::string_view bytes, std::string& hex);

// SHA-256 over bytes that arrive in pieces (a record too large to hold whole).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(std::string_view bytes);
  // Lower-case hex of everything given since construction or the last hex(); starts over.
  std::string hex();

 private:
  void* context_;  // EVP_MD_CTX
};

// True when `npi` is 10 digits whose last digit is the Luhn check digit computed over
// "80840" + the first nine digits (CMS NPI check-digit rule).
bool isValidNpi(std::string_view npi);

}  // namespace fhir
