"""A fish supplier's MCP server, offline: the third-party server an owner puts behind ``agenitry mcp proxy``.

Tools: ``list_products`` (the price list), ``place_order`` (charges ``total``; refuses an
item it does not sell) and ``get_order``. It knows nothing of Agenitry: the proxy in
front of it (examples/mcp_proxy.toml) gates ``place_order`` by the owner's policy.

Orders live in memory; with SUPPLIER_LEDGER set, each order placed is also appended to
that file as a JSON line (what the supplier really received).

    python examples/mcp_supplier_server.py              # over stdio, as an MCP client starts it
    python examples/mcp_supplier_server.py --http 9100  # streamable HTTP on 127.0.0.1:9100/mcp
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from typing import Optional

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

PRICES = {"salmon": 18.0, "tuna": 17.0, "halibut": 24.0}

server = MCPServer("north-sea-supplier", instructions="Fresh fish, delivered next morning.")
orders: dict[str, Order] = {}
numbers = itertools.count(1001)


class Product(BaseModel):
    item: str
    price_per_lb: float


class Order(BaseModel):
    order_id: str
    item: str
    pounds: int
    charged: float
    status: str = "confirmed"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_products() -> list[Product]:
    """The fish on offer today, with the price per pound."""
    return [Product(item=item, price_per_lb=price) for item, price in PRICES.items()]


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
def place_order(
    item: str = Field(description="The fish, e.g. salmon"),
    pounds: int = Field(description="How many pounds", gt=0),
    total: float = Field(description="The price agreed, in dollars"),
    note: Optional[str] = Field(None, description="For the driver"),
) -> Order:
    """Order fish for delivery tomorrow morning; the card on file is charged `total`."""
    if item not in PRICES:
        raise ToolError(f"we do not sell {item} (we sell {', '.join(PRICES)})")
    order = Order(order_id=f"ord_{next(numbers)}", item=item, pounds=pounds, charged=total)
    orders[order.order_id] = order
    ledger = os.environ.get("SUPPLIER_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as file:
            file.write(json.dumps(order.model_dump()) + "\n")
    return order


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def get_order(order_id: str) -> Order:
    """An order placed earlier, by its id."""
    if order_id not in orders:
        raise ToolError(f"no order {order_id}")
    return orders[order_id]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A fish supplier's MCP server (offline).")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    port = parser.parse_args().http
    if port is None:
        server.run()
    else:
        server.run("streamable-http", port=port)
