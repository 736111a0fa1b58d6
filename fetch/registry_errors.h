// How registry answers become errors, for the client's manifest and blob requests alike.
#pragma once

#include <string>

#include "fetch/fetch_config.h"
#include "fetch/http_client.h"
#include "graph/base/error.h"

namespace imagefs::fetch {

// The registry's own words (its JSON error body), with the code its HTTP status implies.
Error StatusError(const HttpResponse& r, const std::string& what);

// A mirror that failed is logged and, if the registry fails too, named in the error.
void NoteMirrorFailure(const Endpoint& endpoint, const Error& error, std::string& notes);
Error WithMirrorErrors(Error error, const std::string& notes);

}  // namespace imagefs::fetch
