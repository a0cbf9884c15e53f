/* test_dmsd_egress.c - where dmsd's git may connect: the address policy as a table (every special-purpose
 * range, IPv4 carried in IPv6, the operator's CIDRs) and DMS_GIT_ALLOW_NETS parsing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/build/egress.h"
#include "../../dms/common.h"

/* ---- the address policy ---- */

typedef struct addr_case {
    const char *ip;
    const char *kind; /* NULL: allowed */
} addr_case;

START_TEST(test_special_purpose_addresses_are_refused_and_public_ones_allowed)
{
    static const addr_case cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link-local"}, /* cloud metadata */
        {"100.64.0.1", "shared address space"},
        {"0.0.0.0", "this network"},
        {"0.1.2.3", "this network"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"255.255.255.255", "reserved"},
        {"240.0.0.1", "reserved"},
        {"192.0.2.1", "documentation"},
        {"198.18.0.1", "benchmarking"},
        {"192.0.0.8", "IETF protocol assignments"},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"fe80::1", "link-local"},
        {"febf::1", "link-local"},
        {"fec0::1", "site-local"},
        {"fc00::1", "unique local (private)"},
        {"fd12:3456::1", "unique local (private)"},
        {"ff02::1", "multicast"},
        {"2001:db8::1", "documentation"},
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
        {"64:ff9b:1::1", "local-use NAT64"},
        {"100::1", "discard"},
        /* IPv4 carried in IPv6: judged as the IPv4 address */
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:169.254.169.254", "link-local"},
        {"::ffff:0:10.0.0.1", "private"}, /* IPv4-translated */
        {"64:ff9b::7f00:1", "loopback"},  /* NAT64 of 127.0.0.1 */
        {"2002:c0a8:0101::1", "private"}, /* 6to4 of 192.168.1.1 */
        {"::127.0.0.1", "loopback"},      /* IPv4-compatible */
        {"::ffff:8.8.8.8", NULL},
        {"64:ff9b::808:808", NULL},
        {"2002:0808:0808::1", NULL},
        /* public */
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"172.32.0.1", NULL},
        {"172.15.255.255", NULL},
        {"100.128.0.1", NULL},
        {"169.255.0.1", NULL},
        {"2606:4700:4700::1111", NULL},
        {"2a00:1450:4001::1", NULL},
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cases); i++) {
        const char *got = egress_refusal_text(cases[i].ip, NULL, 0);
        if (cases[i].kind)
            ck_assert_msg(got && strcmp(got, cases[i].kind) == 0, "%s: want %s, got %s", cases[i].ip,
                          cases[i].kind, got ? got : "allowed");
        else
            ck_assert_msg(!got, "%s: want allowed, got %s", cases[i].ip, got);
    }
    ck_assert_str_eq(egress_refusal_text("example.com", NULL, 0), "not an IP address");
}
END_TEST

START_TEST(test_the_operators_networks_win_over_every_refusal)
{
    egress_net *nets = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_msg(egress_parse_nets(" 127.0.0.0/8 , fd00::/8,10.1.2.3", &nets, &n, &err) == 0, "%s",
                  err.message);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_null(egress_refusal_text("127.0.0.1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("::ffff:127.0.0.1", nets, n)); /* mapped: the IPv4 rule */
    ck_assert_ptr_null(egress_refusal_text("64:ff9b::7f00:1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("fd00::5", nets, n));
    ck_assert_ptr_null(egress_refusal_text("10.1.2.3", nets, n)); /* a bare address is one host */
    ck_assert_str_eq(egress_refusal_text("10.1.2.4", nets, n), "private");
    ck_assert_str_eq(egress_refusal_text("::1", nets, n), "loopback"); /* 127/8 is not ::1 */
    ck_assert_str_eq(egress_refusal_text("fc00::1", nets, n), "unique local (private)");
    ck_assert_str_eq(egress_refusal_text("169.254.169.254", nets, n), "link-local");
    free(nets);
}
END_TEST

START_TEST(test_allow_nets_that_are_not_networks_are_refused_naming_the_setting)
{
    static const char *const bad[] = {"127.0.0.1/8", "localhost", "10.0.0.0/33", "::1/129",
                                      "1.2.3.4/",    "1.2.3.4/x", "fd00::1/8",   "10.0.0.0/-1"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++) {
        egress_net *nets = NULL;
        size_t n = 0;
        dms_error err = {0};
        ck_assert_msg(egress_parse_nets(bad[i], &nets, &n, &err) == -DMS_E_INVALID, "%s accepted", bad[i]);
        ck_assert_str_eq(err.field, EGRESS_ALLOW_NETS_SETTING);
        ck_assert_msg(strstr(err.message, bad[i]) != NULL, "%s", err.message);
        ck_assert_ptr_null(nets);
    }
    egress_net *nets = NULL;
    size_t n = 9;
    dms_error err = {0};
    ck_assert_int_eq(egress_parse_nets("", &nets, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(egress_parse_nets(" , ", &nets, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(egress_parse_nets("0.0.0.0/0,::/0", &nets, &n, &err), 0);
    ck_assert_ptr_null(egress_refusal_text("127.0.0.1", nets, n));
    ck_assert_ptr_null(egress_refusal_text("::1", nets, n));
    free(nets);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dmsd_egress");
    TCase *policy = tcase_create("policy");
    tcase_add_test(policy, test_special_purpose_addresses_are_refused_and_public_ones_allowed);
    tcase_add_test(policy, test_the_operators_networks_win_over_every_refusal);
    tcase_add_test(policy, test_allow_nets_that_are_not_networks_are_refused_naming_the_setting);
    suite_add_tcase(s, policy);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
