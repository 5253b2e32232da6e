#!/usr/bin/env python3
"""Creates the read-model tables in a local DynamoDB emulator from the
definitions in template.yaml, so the template is the one source of truth.

    python scripts/create_tables.py --endpoint http://127.0.0.1:8000

Table names are the defaults the code uses (ledgerline-accounts,
ledgerline-transactions, ledgerline-holds) or LEDGERLINE_ACCOUNTS_TABLE /
LEDGERLINE_TRANSACTIONS_TABLE / LEDGERLINE_HOLDS_TABLE. Existing tables are left alone. Needs boto3
and PyYAML (both come with moto's server).
"""
import argparse
import os
import pathlib
import sys

import boto3
import yaml


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation short tags (!Ref, !Sub, ...) as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


CloudFormationLoader.add_multi_constructor("!", _any_tag)

TABLES = {
    "AccountsTable": ("LEDGERLINE_ACCOUNTS_TABLE", "ledgerline-accounts"),
    "TransactionsTable": ("LEDGERLINE_TRANSACTIONS_TABLE", "ledgerline-transactions"),
    "HoldsTable": ("LEDGERLINE_HOLDS_TABLE", "ledgerline-holds"),
}


def definitions(template_path):
    template = yaml.load(pathlib.Path(template_path).read_text(), Loader=CloudFormationLoader)
    for resource, (variable, default) in TABLES.items():
        properties = template["Resources"][resource]["Properties"]
        table = {
            "TableName": os.environ.get(variable) or default,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties["BillingMode"],
        }
        for indexes in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if indexes in properties:
                table[indexes] = properties[indexes]
        yield table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"))
    parser.add_argument("--template", default=str(pathlib.Path(__file__).resolve().parent.parent / "template.yaml"))
    args = parser.parse_args()
    client = boto3.client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )
    # list_tables answers 100 names a page; the tests' own tables come and go.
    existing = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    for table in definitions(args.template):
        if table["TableName"] in existing:
            continue
        try:
            client.create_table(**table)
        except client.exceptions.ResourceInUseException:
            continue  # made meanwhile
        client.get_waiter("table_exists").wait(TableName=table["TableName"])
        print(f"services: created table {table['TableName']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
