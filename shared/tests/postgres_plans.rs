//! The plans of the command's read, on a table of some size (EXPLAIN, never
//! a timer): one, two or sixteen streams are read through the events index,
//! stream by stream, and never by a scan of the whole `events` table, which
//! would make every entry slower as the ledger grows (docs/BENCHMARKS.md,
//! "Entries").

mod support;

use ledgerline_shared::event_store::command_read_statement;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

#[tokio::test]
async fn a_command_read_goes_through_the_events_index_however_many_streams() {
    let database = support::FreshDatabase::create().await;
    let (client, connection) = tokio_postgres::connect(database.url(), NoTls).await.expect("connect");
    tokio::spawn(connection);
    // 64 streams of 2,000 events with a snapshot 50 events back, and as
    // many streams again with a few events: the planner sees a table that
    // is dear to scan.
    client
        .batch_execute(
            "INSERT INTO streams (stream_id, version) SELECT gen_random_uuid(), 2000 FROM generate_series(1, 64);
             INSERT INTO streams (stream_id, version) SELECT gen_random_uuid(), 3 FROM generate_series(1, 64);
             INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at)
                 SELECT s.stream_id, v, gen_random_uuid(), 'MoneyDeposited', 1, '\\x00', 'plan', gen_random_uuid(), 'plan', now()
                 FROM streams s, generate_series(1, s.version::int) v;
             INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at)
                 SELECT stream_id, version - 50, 3, '\\x00', now() FROM streams WHERE version > 50;
             ANALYZE streams; ANALYZE events; ANALYZE snapshots;",
        )
        .await
        .expect("fill the tables");
    let busy: Vec<Uuid> =
        client.query("SELECT stream_id FROM streams WHERE version = 2000", &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
    for count in [1, 2, 3, 16] {
        let ids = &busy[..count];
        let statement = command_read_statement(count);
        let array = ids.to_vec();
        let params: Vec<&(dyn ToSql + Sync)> = match ids {
            [one] => vec![one],
            [first, second] => vec![first, second],
            _ => vec![&array],
        };
        let rows = client.query(&format!("EXPLAIN {statement}"), &params).await.expect("explain");
        let plan: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
        let reads_of_events: Vec<&String> = plan.iter().filter(|line| line.contains(" on events ")).collect();
        assert!(!reads_of_events.is_empty(), "{count} streams: the plan reads events:\n{}", plan.join("\n"));
        // An Index Scan, or a Bitmap Heap Scan over a Bitmap Index Scan; never a Seq Scan.
        assert!(
            reads_of_events.iter().all(|line| !line.contains("Seq Scan")),
            "{count} streams: a scan of all events:\n{}",
            plan.join("\n")
        );
        // And the read answers: every asked-for stream's 50 events after its snapshot.
        let answered = client.query(statement, &params).await.expect("the read");
        assert_eq!(answered.len(), 50 * count, "{count} streams");
    }
    drop(client);
    database.drop_database().await;
}
