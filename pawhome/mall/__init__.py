"""The mall (docs/mall.md): merchants and their delivery set-up, the catalogue (categories,
products, SKUs, stock), favorites and footprints, addresses, the cart, checkout and orders
with their state machine, after-sale refunds, and the admin's view of it all.

A sibling of community: neither imports the other. Money goes through pawhome.payments,
which sits below; moderation (above) reviews products through the hooks declared here.
"""
