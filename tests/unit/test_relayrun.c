/* relayrun: the relay's socket units read from `systemctl show` output
 * (systemd 252's form: one Key=Value a line, units separated by an empty
 * line, properties of a unit that is not found still printed). */

#include <string.h>

#include "tokend/relayrun.h"
#include "testutil.h"

static const char show[] = "Id=tokend-relay-smtp.socket\n"
                           "LoadState=loaded\n"
                           "ActiveState=active\n"
                           "SubState=listening\n"
                           "Listen=127.0.0.1:1587 (Stream)\n"
                           "\n"
                           "Id=tokend-relay-imap.socket\n"
                           "LoadState=not-found\n"
                           "ActiveState=inactive\n"
                           "SubState=dead\n"
                           "\n"
                           "Id=tokend-relay-pop3.socket\n"
                           "LoadState=loaded\n"
                           "ActiveState=failed\n"
                           "SubState=failed\n"
                           "Listen=[::1]:1995 (Stream)\n"
                           "Listen=127.0.0.1:1995 (Stream)\n";

static void test_parse_units(void)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func((GDestroyNotify)relay_listener_free);
    const RelayListener *smtp, *pop3;

    relayrun_parse_units(show, list);
    g_assert_cmpuint(list->len, ==, 2);
    smtp = g_ptr_array_index(list, 0);
    pop3 = g_ptr_array_index(list, 1);
    g_assert_cmpstr(smtp->protocol, ==, "smtp");
    g_assert_cmpstr(smtp->address, ==, "127.0.0.1:1587");
    g_assert_cmpstr(smtp->via, ==, "tokend-relay-smtp.socket");
    g_assert_true(smtp->active);
    g_assert_cmpstr(smtp->state, ==, "active (listening)");
    g_assert_cmpint(smtp->pid, ==, 0);
    g_assert_cmpstr(pop3->protocol, ==, "pop3");
    g_assert_cmpstr(pop3->address, ==, "[::1]:1995");
    g_assert_false(pop3->active);
    g_assert_cmpstr(pop3->state, ==, "failed (failed)");
}

static void test_parse_nothing(void)
{
    static const char *const inputs[] = {"", "\n\n", "LoadState=loaded\n", "garbage\n=\n\n",
                                         "Id=x.socket\nLoadState=loaded\n"};
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func((GDestroyNotify)relay_listener_free);

    for (size_t i = 0; i < G_N_ELEMENTS(inputs); i++)
        relayrun_parse_units(inputs[i], list);
    /* Only the last names a loaded unit: no address, protocol unknown. */
    g_assert_cmpuint(list->len, ==, 1);
    g_assert_cmpstr(((RelayListener *)g_ptr_array_index(list, 0))->protocol, ==, "?");
    g_assert_cmpstr(((RelayListener *)g_ptr_array_index(list, 0))->address, ==, "");
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/relayrun/parse-units", test_parse_units);
    g_test_add_func("/relayrun/parse-nothing", test_parse_nothing);
    return testutil_run();
}
