#pragma once
/* Hosts and URLs in the configuration: one place for the loopback rule and
 * for taking "host:port", "[v6]:port" and https:// URLs apart (with GUri,
 * never by string surgery).  GLib only: the launcher links it. */

#include <stdbool.h>
#include <glib.h>

/* 127.0.0.1, localhost or ::1 (also written [::1]). */
bool uri_host_is_loopback(const char *host);
/* A host name or an IP address (an IPv6 one without brackets). */
bool uri_host_valid(const char *host);
/* An endpoint tokend may talk to: https://HOST..., or http:// to a loopback
 * host; no user name or password, no fragment in it.  On failure *why says what is
 * wrong (a static string). */
bool uri_endpoint_ok(const char *url, const char **why);
/* The URL has a query (?...): an issuer must not (RFC 8414 2). */
bool uri_has_query(const char *url);
/* "host", "host:port", "[v6]" or "[v6]:port": the host without brackets
 * and the port (0 when none is written).  A bare IPv6 address is refused:
 * "::1:993" could be read two ways.  On failure
 * returns false and sets *why. */
bool uri_split_host_port(const char *text, char **host, int *port, const char **why);
/* "host", "host:port", or https://host[:port][/TENANT][/]: the authority
 * as "host[:port]" ("[v6]:port") and the tenant of the URL's path (or
 * NULL).  A scheme other than https, a user name, a query, a fragment or a
 * longer path is refused with *why. */
bool uri_parse_authority(const char *text, char **authority, char **tenant, const char **why);
/* common, organizations, consumers, a GUID or a DNS domain. */
bool uri_tenant_valid(const char *tenant);
/* scheme://AUTHORITY + path, built by GUri; NULL if authority is bad. */
char *uri_build(const char *scheme, const char *authority, const char *path);
