// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reads a FHIR NPM package tarball (`.tgz`: a gzip-compressed ustar archive whose files sit
// under `package/`). zlib inflates the stream; the tar headers are read here (regular files,
// ustar name prefixes, GNU long names and pax `path` records), which is all npm packages use.

#include <string>
#include <vector>

#include "conformance/common/result.h"

namespace fhir::definitions {

struct ArchiveFile {
  std::string path;  // as stored: "package/StructureDefinition-x.json"
  std::string content;
};

// The regular files of the archive whose names end with `suffix` (e.g. ".json"). Error: the file
// cannot be read, is not gzip, or the tar stream is truncated or malformed. `max_bytes` bounds
// the uncompressed size (a package is a few MB; a gzip bomb is refused).
Result<std::vector<ArchiveFile>> readTarGz(const std::string& file, const std::string& suffix,
                                           size_t max_bytes = size_t{512} << 20);

}  // namespace fhir::definitions
