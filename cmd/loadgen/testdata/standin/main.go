// Command standin takes DBOS's demo shop's place in loadgen's test of how
// it starts one (TestSweepStartsTheDemo): it is started as the demo is,
// from DBOS_SYSTEM_DATABASE_URL and PORT, on the database loadgen made
// with the migrations beside it, and speaks the seed's protocol. It keeps
// a PENDING row in DBOS's workflow_status table for a second after each
// payment, as the demo's dispatch does, and refuses a checkout unless the
// stock was topped up.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	url, port := os.Getenv("DBOS_SYSTEM_DATABASE_URL"), os.Getenv("PORT")
	if url == "" || port == "" {
		log.Fatal("DBOS_SYSTEM_DATABASE_URL and PORT required")
	}
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /product", func(w http.ResponseWriter, r *http.Request) {
		var inventory int
		if err := db.QueryRow(r.Context(), "SELECT inventory FROM products WHERE product_id = 1").Scan(&inventory); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `{"inventory": %d}`, inventory)
	})
	mux.HandleFunc("POST /checkout/{key}", func(w http.ResponseWriter, r *http.Request) {
		// Only a shelf topped up far beyond the demo's 100 sells.
		tag, err := db.Exec(r.Context(), "UPDATE products SET inventory = inventory - 1 WHERE product_id = 1 AND inventory > 1000000")
		if err != nil || tag.RowsAffected() != 1 {
			http.Error(w, "no inventory", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, r.PathValue("key"))
	})
	mux.HandleFunc("POST /payment_webhook/{id}/{status}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id") + ":dispatch"
		if _, err := db.Exec(r.Context(), "INSERT INTO dbos.workflow_status (workflow_uuid, status) VALUES ($1, 'PENDING')", id); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		time.AfterFunc(time.Second, func() {
			db.Exec(context.Background(), "UPDATE dbos.workflow_status SET status = 'SUCCESS' WHERE workflow_uuid = $1", id)
		})
		fmt.Fprint(w, "1")
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, mux))
}
