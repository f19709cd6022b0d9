"""Filters the Meridian playbooks use (ansible-core has no ipaddr filter)."""

import ipaddress

from ansible.errors import AnsibleFilterError


def in_network(addresses, cidr):
    """The addresses (a list of IPv4/IPv6 strings) that lie in CIDR."""
    net = ipaddress.ip_network(cidr, strict=False)
    return [a for a in addresses if ipaddress.ip_address(a) in net]


def host_address(hostvars, network=""):
    """The address a host's daemons listen on: meridian_address if the
    inventory sets it, else its address in NETWORK, else its default one."""
    if hostvars.get("meridian_address"):
        return hostvars["meridian_address"]
    name = hostvars.get("inventory_hostname", "?")
    if network:
        found = in_network(hostvars.get("ansible_all_ipv4_addresses", []), network)
        if not found:
            raise AnsibleFilterError(f"{name} has no address in {network}")
        return found[0]
    default = hostvars.get("ansible_default_ipv4", {}).get("address")
    if not default:
        raise AnsibleFilterError(f"{name} has no default IPv4 address: set meridian_address")
    return default


class FilterModule:
    def filters(self):
        return {"meridian_in_network": in_network, "meridian_host_address": host_address}
